"""PySide6 windows, widgets and workers. Calls the layers below, never the other way."""
