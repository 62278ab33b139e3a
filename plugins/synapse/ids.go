package synapse

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/oklog/ulid/v2"
)

// idGen makes MAS ids: ULIDs (48-bit millisecond timestamp, 80 random
// bits) stored as UUIDs. Times before 1970 give timestamp 0.
type idGen struct {
	mu  sync.Mutex    // guards rng
	rng *rand.ChaCha8 // seeded from crypto/rand
}

func newIDGen() *idGen {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return &idGen{rng: rand.NewChaCha8(seed)}
}

// at returns a new id whose timestamp is t.
func (g *idGen) at(t time.Time) pgtype.UUID {
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	if uint64(ms) > ulid.MaxTime() {
		ms = int64(ulid.MaxTime())
	}
	// The 80 random bits are drawn as two words rather than read as bytes
	// through ulid.New's io.Reader. Kept for measured speed:
	// BenchmarkIDGen, 64-94 ns per id through ulid.New, 31-34 ns this way
	// (one id per MAS row: ~30-50 ms of CPU per migration of the
	// benchmark's set).
	g.mu.Lock()
	hi, lo := g.rng.Uint64(), g.rng.Uint64()
	g.mu.Unlock()
	var id ulid.ULID
	_ = id.SetTime(uint64(ms)) // ms is at most ulid.MaxTime
	binary.BigEndian.PutUint16(id[6:], uint16(hi))
	binary.BigEndian.PutUint64(id[8:], lo)
	return pgtype.UUID{Bytes: id, Valid: true}
}

// idTime is the timestamp inside an id, as MAS reads it back.
func idTime(id pgtype.UUID) time.Time {
	return ulid.Time(ulid.ULID(id.Bytes).Time())
}

// parseULID parses a MAS config ULID (a provider id) into a UUID.
func parseULID(s string) (pgtype.UUID, error) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return pgtype.UUID{}, err
	}
	return pgtype.UUID{Bytes: id, Valid: true}, nil
}
