"""The importer's domain: page planning, canonical normalisation, MRR and churn. Pure, no I/O."""
