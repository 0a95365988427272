"""The backup repository: chunks named by keyed content digests, stored once per store, in
packs, compressed and encrypted; snapshots and templates are manifests of chunk ids.

One concern per module:

- :mod:`.layout` — where things live under ``repository/`` and the configuration object;
- :mod:`.crypto`, :mod:`.keys` — AES-256-GCM, keyed BLAKE3 ids, the master key and where its
  secret comes from (a reference in the store's options, never the secret);
- :mod:`.repo` — a repository opened on a store, through the provider contract only;
- :mod:`.packs`, :mod:`.index` — blobs, packs with their own headers, index files, the view
  a plan hands to its range tasks;
- :mod:`.source` — reading a volume: ranges, fixed-size chunks, zeros, the hole hook;
- :mod:`.runner` — range tasks on threads (embedded) or on the fleet (celery);
- :mod:`.backup`, :mod:`.restore` — plans of independent range tasks and one commit each;
- :mod:`.manifests`, :mod:`.references` — what a backup is, and what keeps a chunk alive;
- :mod:`.locks` — leases of running backups and prunes;
- :mod:`.retention`, :mod:`.prune`, :mod:`.check`, :mod:`.stats` — forget, garbage
  collection in two phases, verification, figures.

docs/REPOSITORY.md has the on-store layout and the measurements behind each choice. It needs
the ``repository`` extra: ``pip install 'mover[repository]'``.
"""
