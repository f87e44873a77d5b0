"""The Data API adapters that keep the books: the attested chat store, its MACs, the outbox."""
