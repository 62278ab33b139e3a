package synapse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// sizes is how much realistic Synapse data generate makes.
type sizes struct {
	Users, Emails, ExternalIDs, Devices, AccessTokens, RefreshPairs int
}

// generate fills a Synapse database (schema loaded, tables empty) with
// realistic data: admins, guests, deactivated and locked users, appservice
// users, users without passwords (20%), emails and other media, two IdPs,
// deviceless and puppet tokens, refresh-token chains with used and unused
// successors, hidden devices and bad IPs. It is deterministic.
func generate(ctx context.Context, conn *pgx.Conn, s sizes) error {
	base := int64(1_600_000_000) // creation_ts, seconds
	name := func(i int) string {
		if i%100 == 7 {
			return fmt.Sprintf("@irc_u%d:%s", i, testServer)
		}
		return fmt.Sprintf("@u%d:%s", i, testServer)
	}
	users := make([][]any, 0, s.Users)
	for i := 0; i < s.Users; i++ {
		var hash, as any
		guest := i%50 == 3
		if i%5 != 0 && !guest {
			hash = fmt.Sprintf("$2b$12$%022d%031d", i, i)
		}
		if i%100 == 7 {
			as = "irc"
		}
		users = append(users, []any{name(i), hash, base + int64(i), b2i(i%500 == 1), b2i(guest), as,
			b2i(i%40 == 5), i%97 == 11})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"users"},
		[]string{"name", "password_hash", "creation_ts", "admin", "is_guest", "appservice_id", "deactivated", "locked"},
		pgx.CopyFromRows(users)); err != nil {
		return fmt.Errorf("users: %w", err)
	}

	threepids := make([][]any, 0, s.Emails)
	for i := 0; i < s.Emails; i++ {
		medium, addr := "email", fmt.Sprintf("u%d@mail.example", i)
		if i%20 == 9 {
			medium, addr = "msisdn", fmt.Sprintf("4477%08d", i)
		}
		at := (base+int64(i))*1000 + 500
		threepids = append(threepids, []any{name((i * 3) % s.Users), medium, addr, at, at})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"user_threepids"},
		[]string{"user_id", "medium", "address", "validated_at", "added_at"}, pgx.CopyFromRows(threepids)); err != nil {
		return fmt.Errorf("threepids: %w", err)
	}

	ext := make([][]any, 0, s.ExternalIDs)
	for i := 0; i < s.ExternalIDs; i++ {
		p := "oidc-github"
		if i%2 == 1 {
			p = "oidc-google"
		}
		ext = append(ext, []any{p, fmt.Sprintf("sub-%d", i), name((i * 11) % s.Users)})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"user_external_ids"},
		[]string{"auth_provider", "external_id", "user_id"}, pgx.CopyFromRows(ext)); err != nil {
		return fmt.Errorf("external ids: %w", err)
	}

	devUser := func(d int) string { return name((d * 7) % s.Users) }
	ips := []any{"10.0.0.1", "2001:db8::1", "-", "not an ip", nil, "::ffff:192.0.2.4"}
	devices := make([][]any, 0, s.Devices)
	for d := 0; d < s.Devices; d++ {
		devices = append(devices, []any{devUser(d), fmt.Sprintf("D%d", d), fmt.Sprintf("Phone %d", d),
			(base+int64(d))*1000 + 42, ips[d%len(ips)], "Element/1.0", d%200 == 13})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"devices"},
		[]string{"user_id", "device_id", "display_name", "last_seen", "ip", "user_agent", "hidden"}, pgx.CopyFromRows(devices)); err != nil {
		return fmt.Errorf("devices: %w", err)
	}

	// Refresh pairs: pair j lives on device j; even pairs have the next
	// pair as successor, whose access token is used when j%4 == 0.
	rts := make([][]any, 0, s.RefreshPairs)
	for j := 0; j < s.RefreshPairs; j++ {
		var next any
		if j%2 == 0 && j+1 < s.RefreshPairs {
			next = int64(j + 1)
		}
		d := j % max(s.Devices, 1)
		rts = append(rts, []any{int64(j), devUser(d), fmt.Sprintf("D%d", d), fmt.Sprintf("syr_%d", j), next})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"refresh_tokens"},
		[]string{"id", "user_id", "device_id", "token", "next_token_id"}, pgx.CopyFromRows(rts)); err != nil {
		return fmt.Errorf("refresh tokens: %w", err)
	}
	ats := make([][]any, 0, s.AccessTokens+s.RefreshPairs)
	for i := 0; i < s.AccessTokens; i++ {
		d := (i * 3) % max(s.Devices, 1)
		user, device := devUser(d), any(fmt.Sprintf("D%d", d))
		if i%10 == 4 {
			user, device = name(i%s.Users), nil
		}
		var puppet any
		if i%25 == 6 {
			puppet = name((i + 1) % s.Users)
		}
		var until any
		if i%3 == 0 {
			until = (base+int64(i))*1000 + 86_400_000
		}
		var validated any
		if i%4 != 1 {
			validated = (base+int64(i))*1000 + 7
		}
		ats = append(ats, []any{int64(i), user, device, fmt.Sprintf("syt_%d", i), until, puppet, validated, nil, nil})
	}
	for j := 0; j < s.RefreshPairs; j++ {
		d := j % max(s.Devices, 1)
		used := j%2 == 1 && (j-1)%4 == 0
		ats = append(ats, []any{int64(s.AccessTokens + j), devUser(d), fmt.Sprintf("D%d", d), fmt.Sprintf("syt_r%d", j),
			nil, nil, (base+int64(j))*1000 + 9, int64(j), used})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"access_tokens"},
		[]string{"id", "user_id", "device_id", "token", "valid_until_ms", "puppets_user_id", "last_validated", "refresh_token_id", "used"},
		pgx.CopyFromRows(ats)); err != nil {
		return fmt.Errorf("access tokens: %w", err)
	}
	_, err := conn.Exec(ctx, "ANALYZE")
	return err
}

func b2i(b bool) int16 {
	if b {
		return 1
	}
	return 0
}
