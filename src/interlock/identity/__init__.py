"""Who is calling: API keys now; OAuth clients and certificates build on it."""

from interlock.identity.apikeys import ApiKeyInfo, ApiKeys, IssuedKey
from interlock.identity.grants import Principal, client_scopes

__all__ = ["ApiKeyInfo", "ApiKeys", "IssuedKey", "Principal", "client_scopes"]
