"""Operations tooling: CLI, local stack, embedded PostgreSQL, migrations, settings, replay, bootstrap."""
