// Package hostile makes inputs a careless or hostile source could hand
// Hoist, for tests of its readers.
package hostile

import (
	"fmt"
	"strconv"
)

// SparseSave is a small `docker save`-like stream whose one entry, at name,
// is a PAX sparse file (GNU format 1.0) claiming size bytes, all of them a
// hole: about 2 KiB that Go's tar reader expands into size zeros. Go's tar
// writer will not write one, so the blocks are made here.
func SparseSave(name string, size int64) []byte {
	var recs string
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", strconv.FormatInt(size, 10)},
	} {
		recs += paxRecord(kv[0], kv[1])
	}
	var out []byte
	out = append(out, header("PaxHeaders/"+name, 'x', int64(len(recs)))...)
	out = append(out, pad([]byte(recs))...)
	// The sparse map, no data fragments, opens the entry's data.
	out = append(out, header(name, '0', 512)...)
	out = append(out, pad([]byte("0\n"))...)
	return append(out, make([]byte, 1024)...) // end of archive
}

// paxRecord is "LEN KEY=VALUE\n", LEN counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

func pad(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// header is one ustar header block.
func header(name string, flag byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "00000000000\x00")
	h[156] = flag
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h
}
