package synapse

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/runbookdev/runbook/sdk"
)

// Entities, in migration order; these names key the outputs.
const (
	entUsers        = "users"
	entThreepids    = "threepids"
	entExternalIDs  = "external_ids"
	entAccessTokens = "nonrefreshable_access_tokens"
	entRefresh      = "refreshable_tokens"
	entDevices      = "devices"
)

var entities = []string{entUsers, entThreepids, entExternalIDs, entAccessTokens, entRefresh, entDevices}

// entityTable is the Synapse table whose row estimate is an entity's total.
var entityTable = map[string]string{
	entUsers: "users", entThreepids: "user_threepids", entExternalIDs: "user_external_ids",
	entAccessTokens: "access_tokens", entRefresh: "refresh_tokens", entDevices: "devices",
}

// userInfo is what later steps need to know about a Synapse user.
type userInfo struct {
	id         pgtype.UUID
	admin      bool
	skipDeps   bool // deactivated, guest or appservice: tokens and devices skipped
	appservice bool // not migrated: every dependent row is skipped
}

type devKey struct{ user, device string }

// flushRows is how many buffered rows trigger a COPY.
const flushRows = 50_000

// migration holds the state of one run. It is used by one goroutine.
type migration struct {
	ids          *idGen
	now          time.Time
	homeserver   string
	providers    map[string]pgtype.UUID
	dropUnmapped bool             // drop links to IdPs no MAS provider maps
	dropped      map[string]int64 // IdP -> links dropped
	ev           sdk.Events
	syn          pgx.Tx          // Synapse read transaction
	reads        *reads          // the reads of the second Synapse connection
	readsDone    <-chan struct{} // closed once every Synapse read is done; nil: unknown
	mas          pgx.Tx          // MAS write transaction

	users    map[string]*userInfo   // by full Matrix ID
	buf      map[string]*copyBuf    // MAS table -> encoded rows waiting for COPY
	buffered int                    // rows in buf
	presort  map[string]int         // table -> column its rows are sorted by before COPY; nil: none
	sorted   map[string]*sortedRows // rows of presorted tables, held until the table is complete
	freeze   bool                   // the MAS tables were truncated in this transaction: COPY FREEZE
	copier   *copier                // writes the batches; nil outside the load
	free     chan []byte            // slices of copied batches, for reuse; filled by the copier
	bufSize  map[string]int         // MAS table -> encoded size of its last batch
	plan     *rebuildPlan           // paused definitions; nil: rebuild after the load
	written  map[string]int64       // MAS table -> rows written, updated by finishLoad
	rebuilt  int                    // definitions rebuilt during the load, updated by finishLoad
	migrated map[string]int64       // entity -> rows migrated
	skipped  map[string]int64       // entity -> rows skipped
	totals   map[string]int64       // entity -> estimated rows
	warnings []string

	// usersSorted: Synapse returns the users in the order of their MAS
	// username (qUsersByLocalpart), so they are streamed as read, and
	// "users" is not in presort.
	usersSorted bool
	usersRows   pgx.Rows // the users query, sent before the MAS tables are prepared
}

func newMigration(e *env, dropUnmapped bool, ev sdk.Events, syn, mas pgx.Tx) *migration {
	return &migration{
		ids: newIDGen(), now: time.Now().UTC().Truncate(time.Microsecond), homeserver: e.homeserver,
		providers: e.providers, dropUnmapped: dropUnmapped, dropped: map[string]int64{}, ev: ev, syn: syn, mas: mas,
		users: map[string]*userInfo{},
		buf:   map[string]*copyBuf{}, sorted: map[string]*sortedRows{}, written: map[string]int64{},
		free: make(chan []byte, 2*len(masTables)*queuedJobs), bufSize: map[string]int{},
		migrated: map[string]int64{}, skipped: map[string]int64{}, totals: map[string]int64{},
	}
}

// add encodes one MAS row into the buffer of its table and flushes when
// the buffer is full.
func (m *migration) add(ctx context.Context, entity, table string, row ...any) error {
	if col, ok := m.presort[table]; ok {
		return m.addSorted(entity, table, col, row)
	}
	b := m.buf[table]
	if b == nil {
		b = m.newBuf(table)
		m.buf[table] = b
	}
	if err := b.appendRow(row...); err != nil {
		return fmt.Errorf("encode a row of %s: %w", table, err)
	}
	m.buffered++
	if m.buffered >= flushRows {
		if err := m.flush(ctx); err != nil {
			return err
		}
		m.progress(entity)
	}
	return nil
}

// flush hands the buffered rows to the copier.
func (m *migration) flush(ctx context.Context) error {
	if m.buffered == 0 {
		return nil
	}
	batch := m.buf
	for t, b := range batch {
		m.bufSize[t] = len(b.b)
	}
	m.buf = map[string]*copyBuf{}
	m.buffered = 0
	return m.send(ctx, copierJob{batch: batch})
}

// newBuf returns an empty buffer for table, big enough for a batch like
// its last one: a slice the copier is done with when one is, so that
// encoding does not keep allocating and growing fresh slices.
func (m *migration) newBuf(table string) *copyBuf {
	want := max(m.bufSize[table]+m.bufSize[table]/8, 64<<10)
	for {
		select {
		case b := <-m.free:
			if cap(b) >= want {
				return &copyBuf{b: b[:0]}
			}
			continue // too small for this table: let it go
		default:
		}
		return &copyBuf{b: make([]byte, 0, want)}
	}
}

// send queues a job on the copier, starting it if needed.
func (m *migration) send(ctx context.Context, job copierJob) error {
	if m.copier == nil {
		m.copier = startCopier(ctx, m.mas, m.freeze, m.ev, m.free, m.readsDone)
	}
	if !m.copier.send(job) {
		return m.finishLoad()
	}
	return nil
}

// stepDone flushes the rows of a finished step, and the held rows of the
// presorted tables it completes, and queues the rebuild of the indexes and
// constraints its completed tables allow.
func (m *migration) stepDone(ctx context.Context, entity string) error {
	if err := m.flush(ctx); err != nil {
		return err
	}
	tables := completedBy[entity]
	if entity == entities[len(entities)-1] {
		tables = masTables // whatever is still held
	}
	if err := m.flushSorted(ctx, tables); err != nil {
		return err
	}
	if m.plan == nil {
		return nil
	}
	if defs := m.plan.ready(completedBy[entity]...); len(defs) > 0 {
		return m.send(ctx, copierJob{rebuild: defs})
	}
	return nil
}

// finishLoad waits for the copier and returns its first error. After it
// the MAS connection is free again.
func (m *migration) finishLoad() error {
	if m.copier == nil {
		return nil
	}
	written, rebuilt, err := m.copier.finish()
	m.copier = nil
	for t, n := range written {
		m.written[t] += n
	}
	m.rebuilt += rebuilt
	return err
}

func (m *migration) progress(entity string) {
	done := m.migrated[entity] + m.skipped[entity]
	total := m.totals[entity]
	if total < done {
		total = done
	}
	m.ev.Progress(done, total, entity)
}

func (m *migration) warn(msg string) {
	m.warnings = append(m.warnings, msg)
	m.ev.Log(sdk.LevelWarn, msg)
}

// userOf returns u, found by the reader goroutine, or else looks the user
// up as user does.
func (m *migration) userOf(u *userInfo, mxid, table string) (*userInfo, error) {
	if u != nil {
		return u, nil
	}
	return m.user(mxid, table)
}

// user finds the user a dependent row belongs to; a missing one is fatal.
func (m *migration) user(mxid, table string) (*userInfo, error) {
	u, ok := m.users[mxid]
	if !ok {
		return nil, sdk.Errorf(sdk.KindConflict, false, "fix or delete the row in Synapse, then migrate again",
			"user %s was not found for migration but a row in %s was found", mxid, table)
	}
	return u, nil
}

// readError is a failure reading Synapse (as opposed to writing MAS).
type readError struct {
	table string
	err   error
}

func (e *readError) Error() string { return "read " + e.table + ": " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func readErr(table string, err error) error { return &readError{table, err} }

// splitMXID strips '@' and splits at the first ':'.
func splitMXID(name string) (localpart, server string) {
	name = strings.TrimPrefix(name, "@")
	localpart, server, _ = strings.Cut(name, ":")
	return localpart, server
}

func wrongServer(name, server, homeserver string) error {
	return sdk.Errorf(sdk.KindConflict, false,
		"matrix.homeserver in the MAS config must be Synapse's server_name; users of other servers cannot be migrated",
		"user %s: wrong server name %q (matrix.homeserver is %q)", name, server, homeserver)
}

// queryUsers sends the users query; migrateUsers reads its rows.
func (m *migration) queryUsers(ctx context.Context) error {
	q := qUsers
	if m.usersSorted {
		q = qUsersByLocalpart
	}
	rows, err := m.syn.Query(ctx, q)
	if err != nil {
		return readErr("users", err)
	}
	m.usersRows = rows
	return nil
}

func (m *migration) migrateUsers(ctx context.Context) error {
	if m.usersRows == nil {
		if err := m.queryUsers(ctx); err != nil {
			return err
		}
	}
	rows := m.usersRows
	defer rows.Close()
	for rows.Next() {
		var (
			name, hash, appservice      *string
			admin, deactivated, isGuest int16
			locked                      bool
			creationTS                  *int64
		)
		if err := rows.Scan(&name, &hash, &admin, &deactivated, &locked, &creationTS, &isGuest, &appservice); err != nil {
			return readErr("users", err)
		}
		if name == nil {
			return sdk.Errorf(sdk.KindConflict, false, "delete or fix the users row with a NULL name", "a Synapse users row has a NULL name")
		}
		if creationTS == nil {
			return sdk.Errorf(sdk.KindConflict, false, "set creation_ts of that user in Synapse", "user %s has a NULL creation_ts", *name)
		}
		if appservice != nil {
			// Appservice users stay with their appservice. Remember them so
			// their rows are skipped, unless the localpart holds a ':'.
			suffix := ":" + m.homeserver
			if !strings.HasSuffix(*name, suffix) {
				_, server := splitMXID(*name)
				return wrongServer(*name, server, m.homeserver)
			}
			local := strings.TrimSuffix(strings.TrimPrefix(*name, "@"), suffix)
			m.skipped[entUsers]++
			if strings.Contains(local, ":") {
				m.warn(fmt.Sprintf("appservice user %s has a ':' in its localpart: dropped, and any row referring to it will fail the migration", *name))
				continue
			}
			m.users[*name] = &userInfo{appservice: true, skipDeps: true}
			continue
		}
		if !strings.HasPrefix(*name, "@") {
			return sdk.Errorf(sdk.KindConflict, false, "fix or delete that user in Synapse", "user id %q lacks the '@' sigil", *name)
		}
		local, server := splitMXID(*name)
		if server != m.homeserver {
			return wrongServer(*name, server, m.homeserver)
		}
		created := time.Unix(*creationTS, 0).UTC()
		u := &userInfo{id: m.ids.at(created), admin: admin != 0, skipDeps: deactivated != 0 || isGuest != 0}
		m.users[*name] = u
		var lockedAt, deactivatedAt any
		if locked {
			lockedAt = created
		}
		if deactivated != 0 {
			deactivatedAt = created
		}
		if err := m.add(ctx, entUsers, "users", u.id, local, created, lockedAt, admin != 0, isGuest != 0, deactivatedAt); err != nil {
			return err
		}
		if hash != nil {
			if err := m.add(ctx, entUsers, "user_passwords", m.ids.at(created), u.id, *hash, created, int32(1), nil); err != nil {
				return err
			}
		}
		m.migrated[entUsers]++
	}
	if err := rows.Err(); err != nil {
		return readErr("users", err)
	}
	if m.reads != nil {
		m.reads.usersDone(m.users) // m.users is complete: read-only from here
	}
	return nil
}

func (m *migration) migrateThreepids(ctx context.Context) error {
	rows, err := m.syn.Query(ctx, qThreepids)
	if err != nil {
		return readErr("user_threepids", err)
	}
	defer rows.Close()
	for rows.Next() {
		var userID, medium, address string
		var addedAt int64
		if err := rows.Scan(&userID, &medium, &address, &addedAt); err != nil {
			return readErr("user_threepids", err)
		}
		u, err := m.user(userID, "user_threepids")
		if err != nil {
			return err
		}
		if u.appservice {
			m.skipped[entThreepids]++
			continue
		}
		created := time.UnixMilli(addedAt).UTC()
		if medium == "email" {
			err = m.add(ctx, entThreepids, "user_emails", m.ids.at(created), u.id, address, created)
		} else {
			err = m.add(ctx, entThreepids, "user_unsupported_third_party_ids", u.id, medium, address, created)
		}
		if err != nil {
			return err
		}
		m.migrated[entThreepids]++
	}
	if err := rows.Err(); err != nil {
		return readErr("user_threepids", err)
	}
	return nil
}

func (m *migration) migrateExternalIDs(ctx context.Context) error {
	rows, err := m.syn.Query(ctx, qExternalIDs)
	if err != nil {
		return readErr("user_external_ids", err)
	}
	defer rows.Close()
	for rows.Next() {
		var userID, provider, subject string
		if err := rows.Scan(&userID, &provider, &subject); err != nil {
			return readErr("user_external_ids", err)
		}
		u, err := m.user(userID, "user_external_ids")
		if err != nil {
			return err
		}
		if u.appservice {
			m.skipped[entExternalIDs]++
			continue
		}
		pid, ok := m.providers[provider]
		if !ok {
			if m.dropUnmapped {
				m.skipped[entExternalIDs]++
				m.dropped[provider]++
				continue
			}
			return sdk.Errorf(sdk.KindConflict, false,
				"add a provider with synapse_idp_id: "+provider+" to upstream_oauth2.providers in the MAS config, or set drop_links_without_mas_provider = true to drop those links",
				"no MAS upstream provider has synapse_idp_id %q (used by user %s)", provider, userID)
		}
		created := idTime(u.id)
		if err := m.add(ctx, entExternalIDs, "upstream_oauth_links", m.ids.at(created), pid, u.id, subject, created, nil); err != nil {
			return err
		}
		m.migrated[entExternalIDs]++
	}
	if err := rows.Err(); err != nil {
		return readErr("user_external_ids", err)
	}
	idps := make([]string, 0, len(m.dropped))
	for idp := range m.dropped {
		idps = append(idps, idp)
	}
	slices.Sort(idps)
	for _, idp := range idps {
		m.warn(fmt.Sprintf("dropped %d links to IdP %q: no MAS upstream provider has synapse_idp_id %q (drop_links_without_mas_provider)", m.dropped[idp], idp, idp))
	}
	return nil
}

// tokenSession returns the compat session of a token: the one of its
// device (made on first use, written by the device step), or for a
// deviceless token (dev nil) a new session written now.
func (m *migration) tokenSession(ctx context.Context, entity string, u *userInfo, dev *deviceRow, created time.Time) (pgtype.UUID, error) {
	if dev == nil {
		id := m.ids.at(created)
		err := m.add(ctx, entity, "compat_sessions", id, u.id, nil, nil, created, false, nil, nil, nil, nil, nil)
		return id, err
	}
	if !dev.sid.Valid {
		dev.sid = m.ids.at(created)
		if err := m.addDeviceSession(ctx, entity, u, dev); err != nil {
			return pgtype.UUID{}, err
		}
	}
	return dev.sid, nil
}

// addDeviceSession writes the compat session of a migrated device, whose
// sid is set. A token step writes it when it gives the device its session
// (the first token of the device that is not skipped: skipToken skips the
// same devices as the devices step), so that the sessions are COPYed while
// the reads go on instead of all after the last one; the devices step
// writes those of the devices no token made a session for.
func (m *migration) addDeviceSession(ctx context.Context, entity string, u *userInfo, r *deviceRow) error {
	var humanName, userAgent any
	if r.name != nil {
		humanName = *r.name
	}
	if r.agent != nil {
		userAgent = *r.agent
	}
	return m.add(ctx, entity, "compat_sessions", r.sid, u.id, r.device, humanName, idTime(r.sid), u.admin,
		msTime(r.lastSeen), parseIP(r.ip), userAgent, nil, nil)
}

// skipToken reports whether a token's rows are skipped: its user is not
// migrated or keeps no sessions, or its device is not migrated.
func skipToken(u *userInfo, device *string, hidden bool) bool {
	return u.skipDeps || hidden || (device != nil && *device == "guest_device")
}

func msTime(ms *int64) any {
	if ms == nil {
		return nil
	}
	return time.UnixMilli(*ms).UTC()
}

// accessTokenRow is a row of qTokensPlain.
type accessTokenRow struct {
	userID, token             string
	device                    *string
	validUntil, lastValidated *int64
	u                         *userInfo // the user, if the reader found it
}

func scanAccessToken(rows pgx.Rows, r *accessTokenRow) error {
	if rawDecodable(rows, accessTokenOIDs...) {
		return scanAccessTokenRaw(rows, r)
	}
	return rows.Scan(&r.userID, &r.device, &r.token, &r.validUntil, &r.lastValidated)
}

// migrateAccessTokens maps the rows of qAccessTokens: the tokens of
// qTokensPlain whose device is in the device index, or that have none.
func (m *migration) migrateAccessTokens(ctx context.Context) error {
	devs, err := m.reads.devices.wait(ctx)
	if err != nil {
		return err
	}
	return m.reads.accessTokens.each(func(r *accessTokenRow) error {
		var dev *deviceRow
		if r.device != nil {
			if dev = devs.lookup(r.userID, *r.device); dev == nil {
				return nil // its device is gone: not read (qAccessTokens)
			}
		}
		u, err := m.userOf(r.u, r.userID, "access_tokens")
		if err != nil {
			return err
		}
		if skipToken(u, r.device, dev != nil && dev.hidden) {
			m.skipped[entAccessTokens]++
			return nil
		}
		created := m.now
		if r.lastValidated != nil {
			created = time.UnixMilli(*r.lastValidated).UTC()
		}
		sid, err := m.tokenSession(ctx, entAccessTokens, u, dev, created)
		if err != nil {
			return err
		}
		if err := m.add(ctx, entAccessTokens, "compat_access_tokens", m.ids.at(created), sid, r.token, created, msTime(r.validUntil)); err != nil {
			return err
		}
		m.migrated[entAccessTokens]++
		return nil
	})
}

// refreshRow is a row of qRefreshTokens.
type refreshRow struct {
	userID, device, accessToken, refreshToken string
	validUntil, lastValidated                 *int64
	hidden                                    bool
	u                                         *userInfo // the user, if the reader found it
}

func scanRefresh(rows pgx.Rows, r *refreshRow) error {
	return rows.Scan(&r.userID, &r.device, &r.accessToken, &r.refreshToken, &r.validUntil, &r.lastValidated, &r.hidden)
}

func (m *migration) migrateRefreshTokens(ctx context.Context) error {
	return m.reads.refresh.each(func(r *refreshRow) error {
		u, err := m.userOf(r.u, r.userID, "refresh_tokens")
		if err != nil {
			return err
		}
		if skipToken(u, &r.device, r.hidden) {
			m.skipped[entRefresh]++
			return nil
		}
		created := m.now
		if r.lastValidated != nil {
			created = time.UnixMilli(*r.lastValidated).UTC()
		}
		dev := m.reads.devices.lookup(r.userID, r.device)
		if dev == nil { // qRefreshTokens joins devices in the same snapshot
			return fmt.Errorf("refresh token of device %s of %s: device not read", r.device, r.userID)
		}
		sid, err := m.tokenSession(ctx, entRefresh, u, dev, created)
		if err != nil {
			return err
		}
		atID := m.ids.at(created)
		if err := m.add(ctx, entRefresh, "compat_access_tokens", atID, sid, r.accessToken, created, msTime(r.validUntil)); err != nil {
			return err
		}
		if err := m.add(ctx, entRefresh, "compat_refresh_tokens", m.ids.at(created), sid, atID, r.refreshToken, created, nil); err != nil {
			return err
		}
		m.migrated[entRefresh]++
		return nil
	})
}

// parseIP parses Synapse's devices.ip; "-" or garbage gives NULL.
func parseIP(ip *string) any {
	if ip == nil {
		return nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(*ip))
	if err != nil {
		return nil
	}
	return a
}

// deviceRow is a row of qDevicesAll.
type deviceRow struct {
	userID, device  string
	name, ip, agent *string
	lastSeen        *int64
	hidden          bool
	sid             pgtype.UUID // its compat session, once a token step made it
}

func scanDevice(rows pgx.Rows, r *deviceRow) error {
	if rawDecodable(rows, deviceOIDs...) {
		return scanDeviceRaw(rows, r)
	}
	return rows.Scan(&r.userID, &r.device, &r.name, &r.lastSeen, &r.ip, &r.agent, &r.hidden)
}

// migrateDevices maps the rows of qDevices: the devices of the index that
// are not hidden and not guest_device, in read order. The sessions of
// those a token step gave one are written already (addDeviceSession).
func (m *migration) migrateDevices(ctx context.Context) error {
	devs, err := m.reads.devices.wait(ctx)
	if err != nil {
		return err
	}
	for i := range devs.rows {
		r := &devs.rows[i]
		if r.hidden || r.device == "guest_device" {
			continue
		}
		u, err := m.user(r.userID, "devices")
		if err != nil {
			return err
		}
		if u.skipDeps {
			m.skipped[entDevices]++
			continue
		}
		if !r.sid.Valid { // no token made its session
			r.sid = m.ids.at(m.now)
			if err := m.addDeviceSession(ctx, entDevices, u, r); err != nil {
				return err
			}
		}
		m.migrated[entDevices]++
	}
	return nil
}
