-- The Matrix Authentication Service tables synapse.migrate writes, the
-- provider table its links point at, and some of the MAS tables holding
-- foreign keys into them (so that emptying `users` needs CASCADE).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE _sqlx_migrations (
    version bigint PRIMARY KEY,
    description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(),
    success boolean NOT NULL,
    checksum bytea NOT NULL,
    execution_time bigint NOT NULL
);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20250311093145, 'user deactivated at', true, '\x00', 0),
       (20260720134722, 'latest migration the plugin knows', true, '\x00', 0);

CREATE TABLE users (
    user_id uuid NOT NULL,
    username text NOT NULL,
    created_at timestamptz NOT NULL,
    locked_at timestamptz,
    can_request_admin boolean NOT NULL DEFAULT false,
    is_guest boolean NOT NULL DEFAULT false,
    deactivated_at timestamptz,
    CONSTRAINT users_pkey PRIMARY KEY (user_id),
    CONSTRAINT users_username_unique UNIQUE (username)
);
CREATE INDEX users_lower_username_idx ON users (lower(username));
CREATE INDEX users_username_trgm_idx ON users USING gin (username gin_trgm_ops);

CREATE TABLE user_passwords (
    user_password_id uuid NOT NULL,
    user_id uuid NOT NULL,
    hashed_password text NOT NULL,
    created_at timestamptz NOT NULL,
    version integer NOT NULL,
    upgraded_from_id uuid,
    CONSTRAINT user_passwords_pkey PRIMARY KEY (user_password_id),
    CONSTRAINT user_passwords_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id),
    CONSTRAINT user_passwords_upgraded_from_id_fkey FOREIGN KEY (upgraded_from_id)
        REFERENCES user_passwords (user_password_id) ON DELETE SET NULL
);
CREATE INDEX user_passwords_user_fk ON user_passwords (user_id);

CREATE TABLE user_emails (
    user_email_id uuid NOT NULL,
    user_id uuid NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT user_emails_pkey PRIMARY KEY (user_email_id),
    CONSTRAINT user_emails_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE
);
CREATE INDEX user_emails_user_fk ON user_emails (user_id);
CREATE INDEX user_emails_email_idx ON user_emails (email);
CREATE INDEX user_emails_lower_email_idx ON user_emails (lower(email));

CREATE TABLE user_unsupported_third_party_ids (
    user_id uuid NOT NULL,
    medium text NOT NULL,
    address text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT user_unsupported_third_party_ids_pkey PRIMARY KEY (user_id, medium, address),
    CONSTRAINT user_unsupported_third_party_ids_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (user_id) ON DELETE CASCADE
);

CREATE TABLE upstream_oauth_providers (
    upstream_oauth_provider_id uuid NOT NULL,
    issuer text,
    human_name text,
    scope text NOT NULL,
    client_id text NOT NULL,
    encrypted_client_secret text,
    token_endpoint_auth_method text NOT NULL,
    created_at timestamptz NOT NULL,
    disabled_at timestamptz,
    claims_imports jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT upstream_oauth_providers_pkey PRIMARY KEY (upstream_oauth_provider_id)
);

CREATE TABLE upstream_oauth_links (
    upstream_oauth_link_id uuid NOT NULL,
    upstream_oauth_provider_id uuid NOT NULL,
    user_id uuid,
    subject text NOT NULL,
    created_at timestamptz NOT NULL,
    human_account_name text,
    CONSTRAINT upstream_oauth_links_pkey PRIMARY KEY (upstream_oauth_link_id),
    CONSTRAINT upstream_oauth_links_subject_unique UNIQUE (upstream_oauth_provider_id, subject),
    CONSTRAINT upstream_oauth_links_provider_fkey FOREIGN KEY (upstream_oauth_provider_id)
        REFERENCES upstream_oauth_providers (upstream_oauth_provider_id),
    CONSTRAINT upstream_oauth_links_user_fkey FOREIGN KEY (user_id) REFERENCES users (user_id)
);
CREATE INDEX upstream_oauth_links_user_fk ON upstream_oauth_links (user_id);

CREATE TABLE user_sessions (
    user_session_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    CONSTRAINT user_sessions_pkey PRIMARY KEY (user_session_id),
    CONSTRAINT user_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id)
);

CREATE TABLE compat_sessions (
    compat_session_id uuid NOT NULL,
    user_id uuid NOT NULL,
    device_id text,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    is_synapse_admin boolean NOT NULL DEFAULT false,
    last_active_at timestamptz,
    last_active_ip inet,
    user_session_id uuid,
    user_agent text,
    human_name text,
    CONSTRAINT compat_sessions_pkey PRIMARY KEY (compat_session_id),
    CONSTRAINT compat_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id),
    CONSTRAINT compat_sessions_user_session_id_fkey FOREIGN KEY (user_session_id)
        REFERENCES user_sessions (user_session_id)
);
CREATE INDEX compat_sessions_user_fk ON compat_sessions (user_id);
CREATE INDEX compat_sessions_last_active_at_idx ON compat_sessions (last_active_at);

CREATE TABLE compat_access_tokens (
    compat_access_token_id uuid NOT NULL,
    compat_session_id uuid NOT NULL,
    access_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    CONSTRAINT compat_access_tokens_pkey PRIMARY KEY (compat_access_token_id),
    CONSTRAINT compat_access_tokens_access_token_key UNIQUE (access_token),
    CONSTRAINT compat_access_tokens_compat_session_id_fkey FOREIGN KEY (compat_session_id)
        REFERENCES compat_sessions (compat_session_id)
);
CREATE INDEX compat_access_tokens_session_fk ON compat_access_tokens (compat_session_id);

CREATE TABLE compat_refresh_tokens (
    compat_refresh_token_id uuid NOT NULL,
    compat_session_id uuid NOT NULL,
    compat_access_token_id uuid NOT NULL,
    refresh_token text NOT NULL,
    created_at timestamptz NOT NULL,
    consumed_at timestamptz,
    CONSTRAINT compat_refresh_tokens_pkey PRIMARY KEY (compat_refresh_token_id),
    CONSTRAINT compat_refresh_tokens_refresh_token_key UNIQUE (refresh_token),
    CONSTRAINT compat_refresh_tokens_compat_session_id_fkey FOREIGN KEY (compat_session_id)
        REFERENCES compat_sessions (compat_session_id),
    CONSTRAINT compat_refresh_tokens_compat_access_token_id_fkey FOREIGN KEY (compat_access_token_id)
        REFERENCES compat_access_tokens (compat_access_token_id)
);
CREATE INDEX compat_refresh_tokens_session_fk ON compat_refresh_tokens (compat_session_id);
CREATE INDEX compat_refresh_tokens_access_token_fk ON compat_refresh_tokens (compat_access_token_id);

CREATE TABLE compat_sso_logins (
    compat_sso_login_id uuid NOT NULL,
    login_token text NOT NULL,
    redirect_uri text NOT NULL,
    created_at timestamptz NOT NULL,
    fulfilled_at timestamptz,
    exchanged_at timestamptz,
    compat_session_id uuid,
    CONSTRAINT compat_sso_logins_pkey PRIMARY KEY (compat_sso_login_id),
    CONSTRAINT compat_sso_logins_login_token_unique UNIQUE (login_token),
    CONSTRAINT compat_sso_logins_compat_session_id_fkey FOREIGN KEY (compat_session_id)
        REFERENCES compat_sessions (compat_session_id) ON DELETE SET NULL
);

CREATE TABLE oauth2_sessions (
    oauth2_session_id uuid NOT NULL,
    user_id uuid,
    scope_list text[] NOT NULL,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    CONSTRAINT oauth2_sessions_pkey PRIMARY KEY (oauth2_session_id),
    CONSTRAINT oauth2_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE
);

CREATE TABLE oauth2_access_tokens (
    oauth2_access_token_id uuid NOT NULL,
    oauth2_session_id uuid NOT NULL,
    access_token text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT oauth2_access_tokens_pkey PRIMARY KEY (oauth2_access_token_id),
    CONSTRAINT oauth2_access_tokens_session_fkey FOREIGN KEY (oauth2_session_id) REFERENCES oauth2_sessions (oauth2_session_id)
);

CREATE TABLE user_terms (
    user_terms_id uuid NOT NULL,
    user_id uuid NOT NULL,
    terms_url text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT user_terms_pkey PRIMARY KEY (user_terms_id),
    CONSTRAINT user_terms_user_id_terms_url_key UNIQUE (user_id, terms_url),
    CONSTRAINT user_terms_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE
);

CREATE TABLE user_recovery_sessions (
    user_recovery_session_id uuid NOT NULL,
    email text NOT NULL,
    user_agent text NOT NULL,
    locale text NOT NULL,
    created_at timestamptz NOT NULL,
    consumed_at timestamptz,
    CONSTRAINT user_recovery_sessions_pkey PRIMARY KEY (user_recovery_session_id)
);

CREATE TABLE user_recovery_tickets (
    user_recovery_ticket_id uuid NOT NULL,
    user_recovery_session_id uuid NOT NULL,
    user_email_id uuid NOT NULL,
    ticket text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT user_recovery_tickets_pkey PRIMARY KEY (user_recovery_ticket_id),
    CONSTRAINT user_recovery_tickets_ticket_key UNIQUE (ticket),
    CONSTRAINT user_recovery_tickets_user_recovery_session_id_fkey FOREIGN KEY (user_recovery_session_id)
        REFERENCES user_recovery_sessions (user_recovery_session_id),
    CONSTRAINT user_recovery_tickets_user_email_id_fkey FOREIGN KEY (user_email_id)
        REFERENCES user_emails (user_email_id) ON DELETE CASCADE
);

CREATE TABLE user_session_authentications (
    user_session_authentication_id uuid NOT NULL,
    user_session_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    user_password_id uuid,
    CONSTRAINT user_session_authentications_pkey PRIMARY KEY (user_session_authentication_id),
    CONSTRAINT user_session_authentications_user_session_id_fkey FOREIGN KEY (user_session_id)
        REFERENCES user_sessions (user_session_id),
    CONSTRAINT user_session_authentications_user_password_id_fkey FOREIGN KEY (user_password_id)
        REFERENCES user_passwords (user_password_id) ON DELETE SET NULL
);
