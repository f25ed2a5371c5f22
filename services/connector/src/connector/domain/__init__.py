"""The connector's business rules: credentials, connections and their features. No framework here."""
