"""The gateway database's schema, as numbered migrations in portable SQL (see :mod:`.database`).

A migration is never edited once released: changes are new migrations appended to :data:`MIGRATIONS`.
Placeholders in braces are filled per dialect by :func:`migrations_for`; write literal braces as ``{{ }}``.
"""

from __future__ import annotations

from .database import DIALECT_TYPES, format_migrations

__all__ = ["DIALECT_TYPES", "MIGRATIONS", "format_migrations", "migrations_for"]

MIGRATIONS: list[str] = [
    # 1: initial schema (zapgate 0.1)
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        hash {BLOB} NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created_at {REAL} NOT NULL,
        revoked_at {REAL}
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        me TEXT,
        device TEXT,
        want_running {BIGINT} NOT NULL DEFAULT 0,
        created_at {REAL} NOT NULL,
        updated_at {REAL} NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE events (
        tenant TEXT NOT NULL,
        seq {BIGINT} NOT NULL,
        session TEXT NOT NULL,
        event TEXT NOT NULL,
        data {BLOB} NOT NULL,
        ts {REAL} NOT NULL,
        PRIMARY KEY (tenant, seq)
    ) {WITHOUT_ROWID};
    CREATE TABLE outbox (
        position {AUTOID},
        message_id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to TEXT,
        idempotency_key TEXT,
        fingerprint TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        wa_timestamp {BIGINT},
        created_at {REAL} NOT NULL,
        finished_at {REAL}
    );
    CREATE UNIQUE INDEX outbox_idempotency ON outbox (session_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX outbox_queued ON outbox (session_id, position) WHERE status = 'queued';
    CREATE TABLE inbound (
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at {REAL} NOT NULL,
        PRIMARY KEY (session_id, message_id)
    ) {WITHOUT_ROWID};
    CREATE TABLE contacts (
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        first_seen_at {REAL} NOT NULL,
        we_wrote_first {BIGINT} NOT NULL,
        PRIMARY KEY (session_id, chat)
    ) {WITHOUT_ROWID};
    """,
    # 2: per-tenant sequence numbers allocated in the database (strictly increasing and gap-free across nodes,
    # and never reused even when every event of a tenant was pruned)
    """
    CREATE TABLE tenant_seq (
        tenant TEXT PRIMARY KEY,
        seq {BIGINT} NOT NULL
    );
    INSERT INTO tenant_seq (tenant, seq) SELECT tenant, max(seq) FROM events GROUP BY tenant;
    """,
    # 3: messages of every kind: the outbox keeps the content (JSON) and what else a send needs; received
    # messages remember their chat, author and kind (to react to, quote, or mark them read)
    """
    ALTER TABLE outbox ADD COLUMN content {BLOB};
    ALTER TABLE outbox ADD COLUMN extra {BLOB};
    ALTER TABLE inbound ADD COLUMN chat TEXT;
    ALTER TABLE inbound ADD COLUMN sender TEXT;
    ALTER TABLE inbound ADD COLUMN kind TEXT;
    """,
    # 4: media files (docs/media.md): one row per media id, pointing at a content-addressed blob (several rows
    # may share one); the outbox names the file a queued message needs, so retention keeps it
    """
    CREATE TABLE media (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        origin TEXT NOT NULL,
        status TEXT NOT NULL,
        sha256 TEXT,
        size {BIGINT},
        mimetype TEXT,
        filename TEXT,
        width {BIGINT},
        height {BIGINT},
        seconds {BIGINT},
        session_id TEXT,
        message_id TEXT,
        chat TEXT,
        claimed_sha256 TEXT,
        media_ref {BLOB},
        reason TEXT,
        detail TEXT,
        attempts {BIGINT} NOT NULL DEFAULT 0,
        next_attempt_at {REAL},
        created_at {REAL} NOT NULL,
        used_at {REAL} NOT NULL
    );
    CREATE INDEX media_blob ON media (sha256);
    CREATE INDEX media_used ON media (used_at);
    CREATE INDEX media_session ON media (session_id);
    CREATE INDEX media_unfinished ON media (status) WHERE status != 'ready';
    ALTER TABLE outbox ADD COLUMN media_id TEXT;
    CREATE INDEX outbox_media ON outbox (media_id) WHERE media_id IS NOT NULL;
    """,
    # 5: several nodes (docs/scaling.md). Every session has one lease; its holder (a node instance) is the only
    # node that runs the session, and ``epoch`` (the fencing token) grows at every change of holder. Times are
    # the database's clock. ``nodes`` are the instances alive now (they renew ``expires_at``); ``cluster`` holds
    # one random id that names the cluster's channels on the bus.
    """
    CREATE TABLE leases (
        session_id TEXT PRIMARY KEY,
        node TEXT,
        epoch {BIGINT} NOT NULL,
        expires_at {REAL} NOT NULL
    );
    CREATE INDEX leases_node ON leases (node);
    CREATE TABLE nodes (
        node TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        started_at {REAL} NOT NULL,
        expires_at {REAL} NOT NULL,
        draining {BIGINT} NOT NULL DEFAULT 0
    );
    CREATE TABLE cluster (
        one {BIGINT} PRIMARY KEY CHECK (one = 1),
        id TEXT NOT NULL
    );
    """,
    # 6: chats and message history (docs/contacts.md). ``messages`` keeps what a session sent and received, live
    # or from WhatsApp's history sync, for ``message.history``; ``chats`` one row per chat with its last message,
    # unread count and the archived / pinned / muted settings. A session id names one tenant's session, so
    # (session_id, chat, timestamp) is the (tenant, session, chat, time) order history pages through; WhatsApp's
    # timestamps are whole seconds, so the gateway's time of storing (``stored_at``) orders messages of one second.
    """
    CREATE TABLE messages (
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sender TEXT,
        sender_lid TEXT,
        from_me {BIGINT} NOT NULL,
        timestamp {BIGINT} NOT NULL,
        kind TEXT NOT NULL,
        text TEXT,
        content {BLOB} NOT NULL,
        reply_to TEXT,
        push_name TEXT,
        origin TEXT NOT NULL,
        is_read {BIGINT} NOT NULL,
        stored_at {REAL} NOT NULL,
        PRIMARY KEY (session_id, chat, message_id)
    );
    CREATE INDEX messages_chat_time ON messages (session_id, chat, timestamp, stored_at, message_id);
    CREATE INDEX messages_unread ON messages (session_id, chat) WHERE is_read = 0;
    CREATE TABLE chats (
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        name TEXT,
        last_message_id TEXT,
        last_timestamp {BIGINT} NOT NULL DEFAULT 0,
        last_stored_at {REAL} NOT NULL DEFAULT 0,
        unread {BIGINT} NOT NULL DEFAULT 0,
        archived {BIGINT} NOT NULL DEFAULT 0,
        pinned {BIGINT} NOT NULL DEFAULT 0,
        muted_until {BIGINT} NOT NULL DEFAULT 0,
        PRIMARY KEY (session_id, chat)
    );
    CREATE INDEX chats_recent ON chats (session_id, last_timestamp, last_stored_at, chat);
    """,
    # 7: who is who (issue 12): each session's map between phone numbers and hidden-user ids (LIDs), user parts
    # only. A LID names one account and an account has one LID, so both columns are unique per session.
    """
    CREATE TABLE identities (
        session_id TEXT NOT NULL,
        lid TEXT NOT NULL,
        phone TEXT NOT NULL,
        learned_at {REAL} NOT NULL,
        PRIMARY KEY (session_id, lid)
    );
    CREATE UNIQUE INDEX identities_phone ON identities (session_id, phone);
    """,
    # 8: tenants, scoped tokens and the audit log (docs/security.md). A token's ``scopes`` is a comma-separated
    # list (tokens of 0.1 had every scope of their tenant: 'tenant'); ``sessions`` a JSON list of the session names
    # it is limited to (NULL: every session). Tenants are rows now (they existed only as names before): one per
    # tenant name known so far. A quota column is NULL for "the gateway's default". ``audit`` keeps who did what:
    # the token id, the command, its tenant and session, when, and how it ended ('ok' or an error code).
    """
    ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'tenant';
    ALTER TABLE tokens ADD COLUMN sessions TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at {REAL};
    CREATE TABLE tenants (
        name TEXT PRIMARY KEY,
        created_at {REAL} NOT NULL,
        disabled_at {REAL},
        max_sessions {BIGINT},
        max_queued_messages {BIGINT},
        max_queued_bytes {BIGINT}
    );
    INSERT INTO tenants (name, created_at)
        SELECT tenant, min(created_at) FROM (
            SELECT tenant, created_at FROM tokens UNION ALL SELECT tenant, created_at FROM sessions
        ) AS known GROUP BY tenant;
    CREATE TABLE audit (
        id {AUTOID},
        ts {REAL} NOT NULL,
        token_id TEXT,
        tenant TEXT,
        session TEXT,
        command TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_tenant ON audit (tenant, id);
    CREATE INDEX audit_ts ON audit (ts);
    """,
    # 9: each tenant's queued messages and their bytes, counted as they change (in the transaction that changes
    # them) rather than by scanning the outbox at every send
    """
    ALTER TABLE tenants ADD COLUMN queued_messages {BIGINT} NOT NULL DEFAULT 0;
    ALTER TABLE tenants ADD COLUMN queued_bytes {BIGINT} NOT NULL DEFAULT 0;
    UPDATE tenants SET
        queued_messages = (
            SELECT count(*) FROM outbox o JOIN sessions s ON s.id = o.session_id
            WHERE s.tenant = tenants.name AND o.status = 'queued'
        ),
        queued_bytes = (
            SELECT coalesce(sum(length(o.content) + coalesce(length(o.extra), 0)), 0) FROM outbox o
            JOIN sessions s ON s.id = o.session_id WHERE s.tenant = tenants.name AND o.status = 'queued'
        );
    """,
    # 10: webhooks (docs/webhooks.md). Each endpoint has a cursor in its tenant's event log (every event up to it
    # was delivered, filtered out or dead-lettered) and, with several nodes, a lease (node, epoch, expires_at on
    # the database's clock) naming the one node that delivers to it. Attempts are kept (the newest 1000 per
    # endpoint); dead letters keep a copy of their event so they can be sent again after the log dropped it.
    """
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        sessions TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_until {REAL},
        description TEXT NOT NULL DEFAULT '',
        enabled {BIGINT} NOT NULL,
        disabled_reason TEXT,
        cursor_seq {BIGINT} NOT NULL,
        failing_since {REAL},
        last_status {BIGINT},
        last_error TEXT,
        last_attempt_at {REAL},
        created_at {REAL} NOT NULL,
        updated_at {REAL} NOT NULL,
        node TEXT,
        epoch {BIGINT} NOT NULL DEFAULT 0,
        expires_at {REAL} NOT NULL DEFAULT 0
    );
    CREATE INDEX webhooks_tenant ON webhooks (tenant, created_at);
    CREATE TABLE webhook_attempts (
        position {AUTOID},
        webhook_id TEXT NOT NULL,
        seq {BIGINT} NOT NULL,
        event TEXT NOT NULL,
        attempt {BIGINT} NOT NULL,
        outcome TEXT NOT NULL,
        status {BIGINT},
        latency_ms {REAL} NOT NULL,
        error TEXT,
        at {REAL} NOT NULL
    );
    CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (webhook_id, position);
    CREATE TABLE webhook_dead_letters (
        webhook_id TEXT NOT NULL,
        seq {BIGINT} NOT NULL,
        session TEXT NOT NULL,
        event TEXT NOT NULL,
        data {BLOB} NOT NULL,
        ts {REAL} NOT NULL,
        attempts {BIGINT} NOT NULL,
        status {BIGINT},
        error TEXT,
        dead_at {REAL} NOT NULL,
        redeliver {BIGINT} NOT NULL DEFAULT 0,
        PRIMARY KEY (webhook_id, seq)
    ) {WITHOUT_ROWID};
    """,
    # 11: the chat history keyed by a number per chat. Each chat row gets an ``id`` (never reused), and a message
    # row names its chat by that id instead of repeating the session id and the chat's address: the keys of
    # ``messages`` and of its two indexes were about 70 to 100 bytes of text each, now a number and the message id
    # (bench/findings.md, round 18). A message whose chat had no row (none is expected) gets one.
    """
    INSERT INTO chats (session_id, chat)
        SELECT DISTINCT m.session_id, m.chat FROM messages m
        WHERE NOT EXISTS (SELECT 1 FROM chats c WHERE c.session_id = m.session_id AND c.chat = m.chat);
    CREATE TABLE chats_v11 (
        id {AUTOID},
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        name TEXT,
        last_message_id TEXT,
        last_timestamp {BIGINT} NOT NULL DEFAULT 0,
        last_stored_at {REAL} NOT NULL DEFAULT 0,
        unread {BIGINT} NOT NULL DEFAULT 0,
        archived {BIGINT} NOT NULL DEFAULT 0,
        pinned {BIGINT} NOT NULL DEFAULT 0,
        muted_until {BIGINT} NOT NULL DEFAULT 0,
        UNIQUE (session_id, chat)
    );
    INSERT INTO chats_v11 (
        session_id, chat, name, last_message_id, last_timestamp, last_stored_at, unread, archived, pinned, muted_until
    )
        SELECT session_id, chat, name, last_message_id, last_timestamp, last_stored_at, unread, archived, pinned,
            muted_until
        FROM chats ORDER BY session_id, chat;
    CREATE TABLE messages_v11 (
        chat_id {BIGINT} NOT NULL,
        message_id TEXT NOT NULL,
        sender TEXT,
        sender_lid TEXT,
        from_me {BIGINT} NOT NULL,
        timestamp {BIGINT} NOT NULL,
        kind TEXT NOT NULL,
        text TEXT,
        content {BLOB} NOT NULL,
        reply_to TEXT,
        push_name TEXT,
        origin TEXT NOT NULL,
        is_read {BIGINT} NOT NULL,
        stored_at {REAL} NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    );
    INSERT INTO messages_v11 (
        chat_id, message_id, sender, sender_lid, from_me, timestamp, kind, text, content, reply_to, push_name,
        origin, is_read, stored_at
    )
        SELECT c.id, m.message_id, m.sender, m.sender_lid, m.from_me, m.timestamp, m.kind, m.text, m.content,
            m.reply_to, m.push_name, m.origin, m.is_read, m.stored_at
        FROM messages m JOIN chats_v11 c ON c.session_id = m.session_id AND c.chat = m.chat
        ORDER BY c.id, m.timestamp, m.stored_at, m.message_id;
    DROP TABLE messages;
    DROP TABLE chats;
    ALTER TABLE chats_v11 RENAME TO chats;
    ALTER TABLE messages_v11 RENAME TO messages;
    CREATE INDEX chats_recent ON chats (session_id, last_timestamp, last_stored_at, chat);
    CREATE INDEX messages_chat_time ON messages (chat_id, timestamp, stored_at, message_id);
    CREATE INDEX messages_unread ON messages (chat_id) WHERE is_read = 0;
    """,
    # 12: received messages' rows in the order they arrive, found by a unique index on (session, message id). The
    # table was keyed by that pair alone (SQLite's WITHOUT ROWID): WhatsApp's message ids are random, so each new
    # row, 110 bytes or more, went to a random page of the whole table, and a burst's commit wrote most of its
    # pages again. Now a row is appended, and only its key (about 45 bytes) lands at random, in an index less than
    # half the table's size (bench/findings.md, round 21). PostgreSQL kept rows apart from their key already. The
    # rows kept are copied in the old table's order (sorting them by time took three to four times as long: 12 to
    # 16 s against 3.3 to 3.6 s for a million rows); they are pruned by age within a day or so anyway.
    """
    CREATE TABLE inbound_v12 (
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at {REAL} NOT NULL,
        chat TEXT,
        sender TEXT,
        kind TEXT,
        PRIMARY KEY (session_id, message_id)
    );
    INSERT INTO inbound_v12 (session_id, message_id, received_at, chat, sender, kind)
        SELECT session_id, message_id, received_at, chat, sender, kind FROM inbound;
    DROP TABLE inbound;
    ALTER TABLE inbound_v12 RENAME TO inbound;
    """,
]


def migrations_for(dialect: str) -> list[str]:
    """:data:`MIGRATIONS` in the SQL of ``dialect``."""
    return format_migrations(MIGRATIONS, dialect)
