"""GDPR register facts: the data taxonomy, special categories and transfer adequacy."""
