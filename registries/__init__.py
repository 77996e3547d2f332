"""The registry client, token service, /v2/ proxy, registry events, repositories, global and project registries."""
