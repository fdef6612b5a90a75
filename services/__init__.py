"""The four ALPR services. They never import each other: they talk over HTTP."""
