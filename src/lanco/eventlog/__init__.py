"""A namespace's event stream: ``claims`` says what is journaled of a run, exactly once, and is on ``run``'s path
(so this package imports nothing); ``stream`` reads the journal from a cursor for ``lanco NS events`` and the API;
``inotify`` lets a follower wait for the journal and the records to change."""
