"""Code two or more services share: settings, database, storage, auth, audit, logging, plates."""
