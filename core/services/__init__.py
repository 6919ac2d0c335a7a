"""Use cases: what the channels and the web pages ask the core to do."""

from core.services.conversation import ConversationService, ConversationSettings, Handled

__all__ = ["ConversationService", "ConversationSettings", "Handled"]
