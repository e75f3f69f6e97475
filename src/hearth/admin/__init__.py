"""Administration: settings stored in the database, and the admin's views over the rest."""
