package scan

import (
	"encoding/binary"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// boltFile makes the first pages of a bbolt file as bbolt writes them: two
// meta pages with magic, version, page size, high-water page and checksum.
func boltFile(pages uint64) []byte {
	const ps = 4096
	b := make([]byte, ps*int(pages))
	for i := 0; i < 2; i++ {
		p := b[i*ps:]
		binary.LittleEndian.PutUint64(p[0:], uint64(i)) // page id
		binary.LittleEndian.PutUint16(p[8:], 0x04)      // meta page flag
		m := p[16:]
		binary.LittleEndian.PutUint32(m[0:], 0xED0CDAED)
		binary.LittleEndian.PutUint32(m[4:], 2)
		binary.LittleEndian.PutUint32(m[8:], ps)
		binary.LittleEndian.PutUint64(m[16:], 3) // root bucket page
		binary.LittleEndian.PutUint64(m[32:], 2) // freelist page
		binary.LittleEndian.PutUint64(m[40:], pages)
		binary.LittleEndian.PutUint64(m[48:], uint64(i))
		h := fnv.New64a()
		h.Write(m[:56])
		binary.LittleEndian.PutUint64(m[56:], h.Sum64())
	}
	return b
}

func TestCheckDB(t *testing.T) {
	good := boltFile(4)
	badBoth := append([]byte(nil), good...)
	copy(badBoth[16:], "garbage!")
	copy(badBoth[4096+16:], "garbage!")
	firstBad := append([]byte(nil), good...)
	firstBad[16+60] ^= 0xff // page 0 checksum broken, page 1 intact
	meta := `{"Version":2,"NextUpdate":"2099-01-01T00:00:00Z","UpdatedAt":"2026-11-20T00:00:00Z"}`
	tests := []struct {
		name    string
		db      []byte // nil: no trivy.db
		meta    string // empty: no metadata.json
		wantErr string
	}{
		{name: "valid", db: good, meta: meta},
		{name: "page 0 damaged, page 1 valid", db: firstBad, meta: meta},
		{name: "missing metadata", db: good, wantErr: "no metadata.json"},
		{name: "corrupt metadata", db: good, meta: "{not json", wantErr: "metadata.json is corrupt"},
		{name: "wrong schema", db: good, meta: `{"Version":1}`, wantErr: "schema 1, the pinned Trivy reads 2"},
		{name: "missing db", meta: meta, wantErr: "trivy.db is missing"},
		{name: "garbage db", db: []byte(strings.Repeat("x", 9000)), meta: meta, wantErr: "corrupt"},
		{name: "both meta pages broken", db: badBoth, meta: meta, wantErr: "corrupt"},
		{name: "truncated", db: good[:4096*3], meta: meta, wantErr: "truncated"},
		{name: "empty file", db: []byte{}, meta: meta, wantErr: "corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.db != nil {
				os.WriteFile(filepath.Join(dir, "trivy.db"), tt.db, 0o644)
			}
			if tt.meta != "" {
				os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(tt.meta), 0o644)
			}
			info, err := CheckDB(dir)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if info.Version != 2 || info.UpdatedAt.Year() != 2026 {
					t.Fatalf("info %+v", info)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("error is more than one line: %q", err)
			}
		})
	}
}

func TestFindDB(t *testing.T) {
	cache := t.TempDir()
	os.MkdirAll(filepath.Join(cache, "db"), 0o755)
	os.WriteFile(filepath.Join(cache, "db", "metadata.json"), []byte("{}"), 0o644)
	for _, tt := range []struct {
		name, in, want, wantErr string
	}{
		{name: "db folder", in: filepath.Join(cache, "db"), want: filepath.Join(cache, "db")},
		{name: "cache folder", in: cache, want: filepath.Join(cache, "db")},
		{name: "missing", in: filepath.Join(cache, "nope"), wantErr: "does not exist"},
		{name: "empty folder", in: t.TempDir(), wantErr: "has no metadata.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findDB(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findDB = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzBoltMeta(f *testing.F) {
	f.Add(boltFile(4)[:128])
	f.Add([]byte{})
	f.Add([]byte(strings.Repeat("\xed", 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		boltMeta(b) // must not panic on any input
	})
}
