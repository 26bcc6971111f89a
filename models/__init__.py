"""Shipped models (see each folder's CARD.md). Data only: ``placekit.models`` finds them."""
