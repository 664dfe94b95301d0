package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hoistci/hoist/pkg/readlimit"
)

func TestUpdateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "build", "lock.json")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := Update(path, func(l *Lock) error {
				l.Put(Image{Name: fmt.Sprintf("img-%02d", i)})
				return nil
			}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	l, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 20 {
		t.Fatalf("lost updates: %d images, want 20", len(l.Images))
	}
	if l.Images[0].Name != "img-00" || l.Images[19].Name != "img-19" {
		t.Fatalf("images not sorted: %s … %s", l.Images[0].Name, l.Images[19].Name)
	}
}

// TestUpdateContextStopsWaiting: a run waiting for the lock another run
// holds stops when its context ends (mage -t), without reading or writing.
func TestUpdateContextStopsWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock.json")
	held := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Update(path, func(l *Lock) error {
			l.Project = "holder"
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	waiting := make(chan struct{})
	waitingHook = func() { close(waiting) }
	t.Cleanup(func() { waitingHook = nil })
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-waiting; cancel() }()
	called := false
	err := UpdateContext(ctx, path, func(l *Lock) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "held by another process") || called {
		t.Fatalf("err = %v, fn called %v; want a cancelled wait that names the lock", err, called)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The lock is free again: a later update goes through.
	if err := UpdateContext(context.Background(), path, func(l *Lock) error {
		if l.Project != "holder" {
			return fmt.Errorf("project %q, want the holder's", l.Project)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateFailureWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock.json")
	if err := Update(path, func(l *Lock) error { l.Project = "a"; return nil }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	boom := errors.New("boom")
	if err := Update(path, func(l *Lock) error { l.Project = "b"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("a failed update changed the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".lock.json.") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "none.json")); !errors.Is(err, ErrNoLock) {
		t.Fatalf("missing: err = %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{half"), 0o644)
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), "run the Images target again") {
		t.Fatalf("corrupt: err = %v", err)
	}
	old := filepath.Join(dir, "old.json")
	os.WriteFile(old, []byte(`{"schema": 99}`), 0o644)
	if _, err := Read(old); err == nil || !strings.Contains(err.Error(), "lock schema 99") {
		t.Fatalf("schema: err = %v", err)
	}
	// A lock symlinked to /dev/zero, or larger than any real lock, is
	// refused in one line without being read whole.
	zero := filepath.Join(dir, "zero.json")
	os.Symlink("/dev/zero", zero)
	if _, err := Read(zero); !errors.Is(err, readlimit.ErrNotRegular) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("/dev/zero: err = %v", err)
	}
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(readlimit.Lock + 1) // sparse: no disk used
	f.Close()
	if _, err := Read(huge); !errors.Is(err, readlimit.ErrTooLarge) || !strings.Contains(err.Error(), "64 MiB") {
		t.Fatalf("huge: err = %v", err)
	}
}

// TestHoldRunWaitsAndNamesTheHolder: a second run is told the holder's
// PID once, stops waiting when its context ends, and gets the lock once
// the first run releases it.
func TestHoldRunWaitsAndNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "build", "run.lock")
	first, err := HoldRun(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var pids []int
	_, err = HoldRun(ctx, path, func(pid int) { pids = append(pids, pid); cancel() })
	if !errors.Is(err, context.Canceled) || len(pids) != 1 || pids[0] != os.Getpid() {
		t.Fatalf("err = %v, told %v; want a cancelled wait told once of pid %d", err, pids, os.Getpid())
	}
	first.Release()
	second, err := HoldRun(context.Background(), path, func(int) { t.Error("waited for a released lock") })
	if err != nil {
		t.Fatal(err)
	}
	second.Release()
}
