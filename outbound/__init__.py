"""Calls the platform makes to addresses its users chose (webhooks): where they may go."""

from outbound.addresses import DestinationRefusedError, check_destination, is_public_address

__all__ = ["DestinationRefusedError", "check_destination", "is_public_address"]
