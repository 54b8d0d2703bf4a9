from litestream.cli.main import main

raise SystemExit(main())
