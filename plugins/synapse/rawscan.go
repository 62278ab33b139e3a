package synapse

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The two largest reads (every device, every plain access token) decode
// their columns from the raw wire values instead of through rows.Scan,
// when every column has the type the decoders expect (text, bigint,
// boolean, as in Synapse's schema); otherwise they scan as usual.
//
// Kept for measured speed: on the benchmark's scale set (200,000 devices,
// 288,000 plain tokens), the two scans took 0.24 s of this process's CPU
// per migration through rows.Scan and 0.13 s decoded raw (pprof over 3
// migrations each; fewer allocations too: no scan plan, no reflection).

// PostgreSQL type oids the raw decoders handle.
const (
	oidBool = 16
	oidInt8 = 20
	oidText = 25
)

// rawDecodable reports whether the columns of rows are exactly of the
// types oids, in order.
func rawDecodable(rows pgx.Rows, oids ...uint32) bool {
	fds := rows.FieldDescriptions()
	if len(fds) != len(oids) {
		return false
	}
	for i, fd := range fds {
		if fd.DataTypeOID != oids[i] || (fd.Format != pgx.TextFormatCode && fd.Format != pgx.BinaryFormatCode) {
			return false
		}
	}
	return true
}

// rawText decodes a NOT NULL text column.
func rawText(v []byte, col string) (string, error) {
	if v == nil {
		return "", fmt.Errorf("%s is NULL", col)
	}
	return string(v), nil
}

// rawTextPtr decodes a nullable text column.
func rawTextPtr(v []byte) *string {
	if v == nil {
		return nil
	}
	s := string(v)
	return &s
}

// rawInt8Ptr decodes a nullable bigint column.
func rawInt8Ptr(fd pgconn.FieldDescription, v []byte, col string) (*int64, error) {
	if v == nil {
		return nil, nil
	}
	var n int64
	if fd.Format == pgx.BinaryFormatCode {
		if len(v) != 8 {
			return nil, fmt.Errorf("%s: %d bytes for a bigint", col, len(v))
		}
		n = int64(binary.BigEndian.Uint64(v))
	} else {
		var err error
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return nil, fmt.Errorf("%s: %w", col, err)
		}
	}
	return &n, nil
}

// rawBool decodes a NOT NULL boolean column.
func rawBool(fd pgconn.FieldDescription, v []byte, col string) (bool, error) {
	switch {
	case v == nil:
		return false, fmt.Errorf("%s is NULL", col)
	case fd.Format == pgx.BinaryFormatCode && len(v) == 1:
		return v[0] != 0, nil
	case fd.Format == pgx.TextFormatCode && len(v) == 1 && (v[0] == 't' || v[0] == 'f'):
		return v[0] == 't', nil
	}
	return false, fmt.Errorf("%s: %q is not a boolean", col, v)
}

// scanDeviceRaw decodes a row of qDevicesAll (rawDecodable with
// deviceOIDs).
func scanDeviceRaw(rows pgx.Rows, r *deviceRow) error {
	v, fds := rows.RawValues(), rows.FieldDescriptions()
	var err error
	if r.userID, err = rawText(v[0], "user_id"); err != nil {
		return err
	}
	if r.device, err = rawText(v[1], "device_id"); err != nil {
		return err
	}
	r.name = rawTextPtr(v[2])
	if r.lastSeen, err = rawInt8Ptr(fds[3], v[3], "last_seen"); err != nil {
		return err
	}
	r.ip, r.agent = rawTextPtr(v[4]), rawTextPtr(v[5])
	r.hidden, err = rawBool(fds[6], v[6], "hidden")
	return err
}

var deviceOIDs = []uint32{oidText, oidText, oidText, oidInt8, oidText, oidText, oidBool}

// scanAccessTokenRaw decodes a row of qTokensPlain (rawDecodable with
// accessTokenOIDs).
func scanAccessTokenRaw(rows pgx.Rows, r *accessTokenRow) error {
	v, fds := rows.RawValues(), rows.FieldDescriptions()
	var err error
	if r.userID, err = rawText(v[0], "user_id"); err != nil {
		return err
	}
	r.device = rawTextPtr(v[1])
	if r.token, err = rawText(v[2], "token"); err != nil {
		return err
	}
	if r.validUntil, err = rawInt8Ptr(fds[3], v[3], "valid_until_ms"); err != nil {
		return err
	}
	r.lastValidated, err = rawInt8Ptr(fds[4], v[4], "last_validated")
	return err
}

var accessTokenOIDs = []uint32{oidText, oidText, oidText, oidInt8, oidInt8}
