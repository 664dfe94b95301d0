// Command reserve times 32 concurrent staging reservations (Hoist's
// gitref.Reserve, real git, a bare repository on disk as the remote)
// against the anchor: the same 32 tags created by 32 plain `git push`
// commands one after another, with no contention. The ratio shows what the
// atomic create-and-retry costs over the bare minimum of 32 tag pushes.
//
//	go run ./internal/bench/reserve [-n 32] [-rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/hoistci/hoist/internal/testenv"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/hoistci/hoist/pkg/gitref"
)

func main() {
	n := flag.Int("n", 32, "concurrent reservations")
	rounds := flag.Int("rounds", 3, "rounds; the median is reported")
	flag.Parse()
	testenv.IsolateGit()
	var hoist, anchor []time.Duration
	var attempts []int
	for r := 0; r < *rounds; r++ {
		a, err := plainPushes(*n)
		if err != nil {
			log.Fatal(err)
		}
		h, tries, err := reservations(*n)
		if err != nil {
			log.Fatal(err)
		}
		anchor, hoist, attempts = append(anchor, a), append(hoist, h), append(attempts, tries)
	}
	mh, ma := median(hoist), median(anchor)
	fmt.Printf("%d concurrent reservations (Hoist): %.3f s (median of %d; tags tried per round: %v)\n", *n, mh.Seconds(), *rounds, attempts)
	fmt.Printf("%d sequential git push of new tags (anchor): %.3f s\n", *n, ma.Seconds())
	fmt.Printf("ratio: %.2f\n", mh.Seconds()/ma.Seconds())
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// repo makes a bare remote and a checkout with one commit.
func repo() (work, sha string, cleanup func(), err error) {
	root, err := os.MkdirTemp("", "hoist-bench-reserve-")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { os.RemoveAll(root) }
	bare, work := filepath.Join(root, "remote.git"), filepath.Join(root, "work")
	for _, c := range [][]string{
		{root, "init", "-q", "--bare", bare},
		{root, "init", "-q", work},
		{work, "commit", "-q", "--allow-empty", "-m", "one"},
		{work, "remote", "add", "origin", bare},
	} {
		if _, err := git(c[0], c[1:]...); err != nil {
			cleanup()
			return "", "", nil, err
		}
	}
	sha, err = git(work, "rev-parse", "HEAD")
	return work, sha, cleanup, err
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func plainPushes(n int) (time.Duration, error) {
	work, sha, cleanup, err := repo()
	if err != nil {
		return 0, err
	}
	defer cleanup()
	start := time.Now()
	for i := 1; i <= n; i++ {
		if _, err := git(work, "push", "-q", "origin", fmt.Sprintf("%s:refs/tags/1.2.3-staging.%d", sha, i)); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func reservations(n int) (time.Duration, int, error) {
	work, sha, cleanup, err := repo()
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	g := &gitref.Git{Dir: work, Remote: "origin"}
	base := semver.MustParse("1.2.3")
	ctx := context.Background()
	res := make([]*gitref.Reservation, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = gitref.Reserve(ctx, g, base, sha)
		}()
	}
	wg.Wait()
	d := time.Since(start)
	seen := map[string]bool{}
	tries := 0
	for i := range res {
		if errs[i] != nil {
			return 0, 0, errs[i]
		}
		if seen[res[i].Tag] {
			return 0, 0, fmt.Errorf("%s reserved twice", res[i].Tag)
		}
		seen[res[i].Tag] = true
		tries += res[i].Attempts
	}
	return d, tries, nil
}
