-- The Synapse (schema v94) tables that synapse.migrate reads, with their
-- exact columns, types, keys and indexes. Create the database with C
-- collation (LC_COLLATE and LC_CTYPE 'C', TEMPLATE template0).
CREATE TABLE users (
    name text,
    password_hash text,
    creation_ts bigint,
    admin smallint NOT NULL DEFAULT 0,
    upgrade_ts bigint,
    is_guest smallint NOT NULL DEFAULT 0,
    appservice_id text,
    consent_version text,
    consent_server_notice_sent text,
    user_type text,
    deactivated smallint NOT NULL DEFAULT 0,
    shadow_banned boolean,
    consent_ts bigint,
    approved boolean,
    locked boolean NOT NULL DEFAULT false,
    suspended boolean NOT NULL DEFAULT false,
    CONSTRAINT users_name_key UNIQUE (name)
);
CREATE INDEX users_creation_ts ON users (creation_ts);

CREATE TABLE user_threepids (
    user_id text NOT NULL,
    medium text NOT NULL,
    address text NOT NULL,
    validated_at bigint NOT NULL,
    added_at bigint NOT NULL,
    CONSTRAINT medium_address UNIQUE (medium, address)
);
CREATE INDEX user_threepids_user_id ON user_threepids (user_id);

CREATE TABLE user_external_ids (
    auth_provider text NOT NULL,
    external_id text NOT NULL,
    user_id text NOT NULL,
    CONSTRAINT user_external_ids_auth_provider_external_id_key UNIQUE (auth_provider, external_id)
);
CREATE INDEX user_external_ids_user_id_idx ON user_external_ids (user_id);

CREATE TABLE devices (
    user_id text NOT NULL,
    device_id text NOT NULL,
    display_name text,
    last_seen bigint,
    ip text,
    user_agent text,
    hidden boolean DEFAULT false,
    CONSTRAINT device_uniqueness UNIQUE (user_id, device_id)
);

CREATE TABLE refresh_tokens (
    id bigint NOT NULL PRIMARY KEY,
    user_id text NOT NULL,
    device_id text NOT NULL,
    token text NOT NULL UNIQUE,
    next_token_id bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    expiry_ts bigint,
    ultimate_session_expiry_ts bigint
);
CREATE INDEX refresh_tokens_next_token_id ON refresh_tokens (next_token_id) WHERE next_token_id IS NOT NULL;

CREATE TABLE access_tokens (
    id bigint NOT NULL PRIMARY KEY,
    user_id text NOT NULL,
    device_id text,
    token text NOT NULL UNIQUE,
    valid_until_ms bigint,
    puppets_user_id text,
    last_validated bigint,
    refresh_token_id bigint REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    used boolean
);
CREATE INDEX access_tokens_device_id ON access_tokens (user_id, device_id);
