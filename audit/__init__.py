"""Append-only, hash-chained audit log of every decision, import, login and ruleset change."""
