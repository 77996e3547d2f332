"""Background work of projects: none yet (a project change is immediate; what follows from it runs as jobs of
the app that owns the work)."""
