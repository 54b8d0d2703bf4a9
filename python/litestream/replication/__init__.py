"""Work on a replica beyond uploading L0 files: compaction into levels, snapshots, retention, and the
scheduling of those jobs. Everything here speaks to storage only through the ReplicaClient protocol, so
every backend gets it, and so can the read replica that comes later."""
