package scan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// dbSchema is the vulnerability DB schema the pinned Trivy reads.
const dbSchema = 2

// DBInfo is what metadata.json says about a vulnerability DB.
type DBInfo struct {
	Version    int       `json:"Version"`
	NextUpdate time.Time `json:"NextUpdate"`
	UpdatedAt  time.Time `json:"UpdatedAt"`
}

// String describes the DB for reports, e.g. "trivy-db v2, updated 2026-11-20".
func (d DBInfo) String() string {
	return fmt.Sprintf("trivy-db v%d, updated %s", d.Version, d.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC"))
}

// findDB resolves an offline DB folder: the folder holding trivy.db and
// metadata.json, or a Trivy cache folder holding db/ with them.
func findDB(dir string) (string, error) {
	for _, d := range []string{dir, filepath.Join(dir, "db")} {
		if _, err := os.Stat(filepath.Join(d, "metadata.json")); err == nil {
			return d, nil
		}
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("offline vulnerability DB %s does not exist: point scan.db_dir (or HOIST_TRIVY_DB) at a folder holding trivy.db and metadata.json", dir)
	}
	return "", fmt.Errorf("offline vulnerability DB %s has no metadata.json: it must hold trivy.db and metadata.json as Trivy downloads them (trivy --download-db-only, then copy ~/.cache/trivy/db)", dir)
}

// CheckDB validates a vulnerability DB folder before Trivy opens it. Trivy
// replaces a DB it cannot open with an empty one and then reports nothing,
// so a corrupt DB must be caught here: it would otherwise pass every image.
func CheckDB(dir string) (DBInfo, error) {
	var info DBInfo
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		return info, fmt.Errorf("vulnerability DB %s: no metadata.json: fetch the DB again", dir)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("vulnerability DB %s: metadata.json is corrupt (%v): fetch the DB again", dir, err)
	}
	if info.Version != dbSchema {
		return info, fmt.Errorf("vulnerability DB %s is schema %d, the pinned Trivy reads %d: fetch a v%d DB", dir, info.Version, dbSchema, dbSchema)
	}
	if err := checkBolt(filepath.Join(dir, "trivy.db")); err != nil {
		return info, fmt.Errorf("vulnerability DB %s: %w: fetch the DB again", dir, err)
	}
	return info, nil
}

// checkBolt checks a bbolt file's meta pages: magic, version, checksum and
// that the file is as long as the meta says. It reads only the first pages.
func checkBolt(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("trivy.db is missing")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("trivy.db is unreadable: %v", err)
	}
	m, ok := boltMeta(head[:n])
	if !ok && m.pageSize >= 512 && m.pageSize <= 1<<16 {
		// Page 0 is damaged; bbolt falls back to page 1.
		second := make([]byte, 128)
		if _, err := f.ReadAt(second, int64(m.pageSize)); err == nil {
			m, ok = boltMeta(second)
		}
	}
	if !ok {
		return errors.New("trivy.db is corrupt (not a valid bolt database)")
	}
	if int64(m.pgid)*int64(m.pageSize) > st.Size() {
		return fmt.Errorf("trivy.db is truncated (%d bytes, its meta needs %d)", st.Size(), int64(m.pgid)*int64(m.pageSize))
	}
	return nil
}

type meta struct {
	pageSize uint32
	pgid     uint64
}

// boltMeta decodes a meta page (16-byte page header, then the meta) and
// verifies it. bbolt writes in the machine's byte order; Trivy's DBs are
// made and read on little-endian machines.
func boltMeta(p []byte) (meta, bool) {
	const hdr = 16
	if len(p) < hdr+64 {
		return meta{}, false
	}
	b := p[hdr:]
	le := binary.LittleEndian
	m := meta{pageSize: le.Uint32(b[8:]), pgid: le.Uint64(b[40:])}
	if le.Uint32(b[0:]) != 0xED0CDAED || le.Uint32(b[4:]) != 2 {
		return m, false
	}
	h := fnv.New64a()
	h.Write(b[:56])
	return m, h.Sum64() == le.Uint64(b[56:])
}

// checkDBFirst checks the DB before anything runs: an offline DB (and links
// it into a cache folder of its own under OutDir), or an online DB already
// downloaded. An online DB not yet downloaded is checked after the download.
func checkDBFirst(o *Options) (DBInfo, error) {
	if o.DBDir != "" {
		o.CacheDir = filepath.Join(o.OutDir, "trivy-cache")
		return prepareOfflineDB(o.DBDir, o.CacheDir)
	}
	dir := filepath.Join(o.CacheDir, "db")
	if _, err := os.Stat(filepath.Join(dir, "trivy.db")); err != nil {
		return DBInfo{}, nil
	}
	info, err := CheckDB(dir)
	if err != nil {
		return info, fmt.Errorf("%w (delete %s and Trivy downloads a fresh one)", err, dir)
	}
	return info, nil
}

// prepareOfflineDB checks the offline DB and makes cacheDir/db point at it,
// since Trivy reads its DB from CACHE/db.
func prepareOfflineDB(dbDir, cacheDir string) (DBInfo, error) {
	abs, err := filepath.Abs(dbDir)
	if err != nil {
		return DBInfo{}, err
	}
	dir, err := findDB(abs)
	if err != nil {
		return DBInfo{}, err
	}
	info, err := CheckDB(dir)
	if err != nil {
		return info, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return info, fmt.Errorf("creating %s: %w", cacheDir, err)
	}
	link := filepath.Join(cacheDir, "db")
	if st, err := os.Lstat(link); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return info, fmt.Errorf("%s is a downloaded DB, not a link to the offline DB %s: use another cache folder for offline scans", link, dir)
	}
	if cur, err := os.Readlink(link); err != nil || cur != dir {
		tmp := link + ".tmp" + fmt.Sprint(os.Getpid())
		os.Remove(tmp)
		if err := os.Symlink(dir, tmp); err != nil {
			return info, fmt.Errorf("linking the offline DB: %w", err)
		}
		if err := os.Rename(tmp, link); err != nil {
			return info, fmt.Errorf("linking the offline DB: %w", err)
		}
	}
	return info, nil
}
