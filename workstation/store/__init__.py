"""Local records kept with a study (the reviewer's readings); SQLite worklist later."""
