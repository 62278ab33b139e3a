package synapse

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkCopyEncode compares copyBuf.appendRow with what pgx.CopyFrom
// does for each value (pgtype.Map.Encode in the binary format) on a
// compat_sessions row, the widest table of the migration.
func BenchmarkCopyEncode(b *testing.B) {
	id := pgtype.UUID{Bytes: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Valid: true}
	name := "Pixel 7"
	tm := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
	ip := netip.MustParseAddr("192.0.2.7")
	row := []any{id, id, &name, (*string)(nil), tm, true, tm, ip, "Mozilla/5.0 (X11; Linux x86_64)", nil, pgtype.UUID{}}
	b.Run("appendRow", func(b *testing.B) {
		c := &copyBuf{}
		for b.Loop() {
			if c.rows == 10000 {
				c.b, c.rows = c.b[:0], 0
			}
			if err := c.appendRow(row...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgtype.Map", func(b *testing.B) {
		m := pgtype.NewMap()
		oids := []uint32{pgtype.UUIDOID, pgtype.UUIDOID, pgtype.TextOID, pgtype.TextOID, pgtype.TimestamptzOID, pgtype.BoolOID,
			pgtype.TimestamptzOID, pgtype.InetOID, pgtype.TextOID, pgtype.TimestamptzOID, pgtype.UUIDOID}
		var buf []byte
		n := 0
		for b.Loop() {
			if n == 10000 {
				buf, n = buf[:0], 0
			}
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(row)))
			for i, v := range row {
				at := len(buf)
				buf = append(buf, 0, 0, 0, 0)
				out, err := m.Encode(oids[i], pgtype.BinaryFormatCode, v, buf)
				if err != nil {
					b.Fatal(err)
				}
				if out == nil {
					binary.BigEndian.PutUint32(buf[at:], 0xffffffff)
					continue
				}
				binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
				buf = out
			}
			n++
		}
	})
}
