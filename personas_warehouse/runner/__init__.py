"""Runs plans on real engines: connections, transactions and the catalog."""
