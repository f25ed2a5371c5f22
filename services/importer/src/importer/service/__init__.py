"""Use cases of the importer: plan an import, fetch a page, complete an import."""
