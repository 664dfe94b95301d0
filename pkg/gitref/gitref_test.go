package gitref

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/hoistci/hoist/internal/githubtest"
	"github.com/hoistci/hoist/internal/testenv"
	"github.com/hoistci/hoist/pkg/github"
)

func TestMain(m *testing.M) {
	// Tests run real git in temporary repositories; keep the machine's git
	// config out so results do not depend on it.
	testenv.IsolateGit()
	os.Exit(m.Run())
}

var git = testenv.Git

// repo makes a bare remote and a checkout with one commit pushed to it.
func repo(t testing.TB) (bare, work, sha string) {
	t.Helper()
	root := t.TempDir()
	bare, work = filepath.Join(root, "remote.git"), filepath.Join(root, "work")
	git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	git(t, root, "init", "-q", "-b", "main", work)
	git(t, work, "commit", "-q", "--allow-empty", "-m", "first")
	git(t, work, "remote", "add", "origin", bare)
	git(t, work, "push", "-q", "origin", "main")
	return bare, work, git(t, work, "rev-parse", "HEAD")
}

// clone makes another checkout of bare, as a second CI runner would have.
func clone(t testing.TB, bare string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	git(t, filepath.Dir(dir), "clone", "-q", bare, dir)
	return dir
}

func commit(t testing.TB, dir, msg string) string {
	t.Helper()
	git(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

var v123 = semver.MustParse("1.2.3")

// reserveRounds: rounds of 32 concurrent reservations on one remote. Soak
// with e.g. go test -race -run ReserveConcurrent -reserve.rounds=20 ./pkg/gitref
var reserveRounds = flag.Int("reserve.rounds", 2, "rounds of 32 concurrent reservations in TestReserveConcurrentGit")

// TestReserveConcurrentGit is the property the staging line rests on: 32
// reservations at once, from four checkouts of two commits, get 32 distinct
// N and the remote ends with exactly those tags, each at its reserver's
// commit. It runs several rounds on one remote, so later rounds also start
// from a hint that is stale by the time they push.
func TestReserveConcurrentGit(t *testing.T) {
	bare, work, shaA := repo(t)
	shaB := commit(t, work, "second")
	git(t, work, "push", "-q", "origin", "main")
	var clones []*Git
	for i := 0; i < 4; i++ {
		dir := clone(t, bare)
		if i%2 == 1 {
			git(t, dir, "checkout", "-q", shaA)
		}
		clones = append(clones, &Git{Dir: dir, Remote: "origin"})
	}
	rounds := *reserveRounds
	if testing.Short() {
		rounds = 1
	}
	want := map[string]string{} // tag → sha, over all rounds
	for round := 0; round < rounds; round++ {
		got := reserveMany(t, 32, func(i int) (Reserver, string) {
			g := clones[i%4]
			if i%4%2 == 1 {
				return g, shaA
			}
			return g, shaB
		})
		for tag, sha := range got {
			if _, dup := want[tag]; dup {
				t.Fatalf("round %d: %s reserved twice", round, tag)
			}
			want[tag] = sha
		}
	}
	have := map[string]string{}
	for _, l := range strings.Split(git(t, work, "ls-remote", "--tags", "origin"), "\n") {
		f := strings.Fields(l)
		have[strings.TrimPrefix(f[1], "refs/tags/")] = f[0]
	}
	if len(have) != len(want) {
		t.Fatalf("remote has %d tags, %d were reserved", len(have), len(want))
	}
	for tag, sha := range want {
		if have[tag] != sha {
			t.Fatalf("%s is at %s on the remote, reserved at %s", tag, have[tag], sha)
		}
	}
}

// reserveMany runs n reservations of 1.2.3 at once and checks that each got
// its own N; it returns tag → commit.
func reserveMany(t *testing.T, n int, pick func(i int) (Reserver, string)) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := make([]*Reservation, n)
	errs := make([]error, n)
	shas := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		r, sha := pick(i)
		shas[i] = sha
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i], errs[i] = Reserve(ctx, r, v123, sha)
		}()
	}
	close(start)
	wg.Wait()
	got := map[string]string{}
	var ns []uint64
	for i := range res {
		if errs[i] != nil {
			t.Fatalf("reservation %d: %v", i, errs[i])
		}
		if prev, dup := got[res[i].Tag]; dup {
			t.Fatalf("%s handed out twice (at %s and %s)", res[i].Tag, prev, shas[i])
		}
		if res[i].SHA != shas[i] || res[i].Version.String() != res[i].Tag {
			t.Fatalf("reservation %d = %+v, want sha %s", i, res[i], shas[i])
		}
		got[res[i].Tag] = shas[i]
		ns = append(ns, res[i].N)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	for i := 1; i < len(ns); i++ {
		if ns[i] == ns[i-1] {
			t.Fatalf("N=%d handed out twice", ns[i])
		}
	}
	return got
}

// TestReserveConcurrentGitHub: the same property through the Git refs API.
func TestReserveConcurrentGitHub(t *testing.T) {
	srv := githubtest.New(t, "acme/widgets", "tok")
	c, err := github.New(srv.URL, "acme/widgets", "tok")
	if err != nil {
		t.Fatal(err)
	}
	h := &GitHub{Client: c}
	sha := strings.Repeat("a", 40)
	got := reserveMany(t, 32, func(int) (Reserver, string) { return h, sha })
	if len(got) != 32 {
		t.Fatalf("%d tags", len(got))
	}
	for tag := range got {
		if at, ok := srv.Ref("refs/tags/" + tag); !ok || at != sha {
			t.Fatalf("%s not on the server at %s", tag, sha)
		}
	}
}

// backends runs a test against both Reserver backends. make returns the
// Reserver, the commit to reserve at, another commit, and a function that
// creates a tag behind the Reserver's back (as another runner would).
type backend struct {
	r      Reserver
	sha    string
	other  string
	create func(tag, sha string)
}

func backends(t *testing.T) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"git": func(t *testing.T) backend {
			_, work, sha := repo(t)
			other := commit(t, work, "other")
			git(t, work, "reset", "-q", "--hard", sha)
			return backend{r: &Git{Dir: work, Remote: "origin"}, sha: sha, other: other, create: func(tag, at string) {
				git(t, work, "push", "-q", "origin", at+":refs/tags/"+tag)
			}}
		},
		"github": func(t *testing.T) backend {
			srv := githubtest.New(t, "acme/widgets", "tok")
			c, _ := github.New(srv.URL, "acme/widgets", "tok")
			return backend{r: &GitHub{Client: c}, sha: strings.Repeat("a", 40), other: strings.Repeat("b", 40), create: func(tag, at string) {
				srv.SetRef("refs/tags/"+tag, at)
			}}
		},
	}
}

func TestReserveExactOverrideRules(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			ctx := context.Background()
			// Absent: created at this commit.
			res, err := ReserveExact(ctx, b.r, "1.2.3-staging.99", b.sha)
			if err != nil || res.Existing || res.N != 99 {
				t.Fatalf("absent: %+v, %v", res, err)
			}
			if at, ok, _ := b.r.Tag(ctx, "1.2.3-staging.99"); !ok || at != b.sha {
				t.Fatalf("absent: tag at %q (%v), want %s", at, ok, b.sha)
			}
			// Same commit: accepted as already reserved (a re-run).
			res, err = ReserveExact(ctx, b.r, "1.2.3-staging.99", b.sha)
			if err != nil || !res.Existing {
				t.Fatalf("same commit: %+v, %v", res, err)
			}
			if exists, err := Check(ctx, b.r, "1.2.3-staging.99", b.sha); err != nil || !exists {
				t.Fatalf("Check same commit: %v, %v", exists, err)
			}
			// Other commit: refused, and the tag does not move.
			b.create("1.2.3-staging.7", b.other)
			_, err = ReserveExact(ctx, b.r, "1.2.3-staging.7", b.sha)
			if !errors.Is(err, ErrElsewhere) {
				t.Fatalf("other commit: err = %v, want ErrElsewhere", err)
			}
			if !strings.Contains(err.Error(), b.other[:12]) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("other commit: message %q should name %s on one line", err, b.other[:12])
			}
			if _, err := Check(ctx, b.r, "1.2.3-staging.7", b.sha); !errors.Is(err, ErrElsewhere) {
				t.Fatalf("Check other commit: %v", err)
			}
			if at, _, _ := b.r.Tag(ctx, "1.2.3-staging.7"); at != b.other {
				t.Fatalf("tag moved to %s", at)
			}
			if exists, err := Check(ctx, b.r, "1.2.3-staging.8", b.sha); err != nil || exists {
				t.Fatalf("Check absent: %v, %v", exists, err)
			}
		})
	}
}

// staleHint hides the remote's tags, as a hint read long ago would.
type staleHint struct{ Reserver }

func (staleHint) Tags(context.Context, string) ([]string, error) { return nil, nil }

func TestReserveHintAndStaleHint(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b := mk(t)
			ctx := context.Background()
			// A first run bootstraps at X.Y.Z-staging.0.
			if n, err := Hint(ctx, b.r, v123); err != nil || n != 0 || First != 0 {
				t.Fatalf("Hint on a remote with no tags = %d, %v; want 0", n, err)
			}
			for _, tag := range []string{"1.2.3-staging.0", "1.2.3-staging.1", "1.2.3-staging.2", "1.2.3-staging.3", "1.2.2-staging.40", "1.2.3-rc.1", "v1.2.3-staging.50"} {
				b.create(tag, b.other)
			}
			n, err := Hint(ctx, b.r, v123)
			if err != nil || n != 4 {
				t.Fatalf("Hint = %d, %v; want 4", n, err)
			}
			// Correctness comes from the create: with no hint, Reserve walks
			// past the existing tags, even one at this very commit.
			b.create("1.2.3-staging.4", b.sha)
			res, err := Reserve(ctx, staleHint{b.r}, v123, b.sha)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tag != "1.2.3-staging.5" || res.Attempts != 6 {
				t.Fatalf("got %s after %d attempts, want 1.2.3-staging.5 after 6", res.Tag, res.Attempts)
			}
			res, err = Reserve(ctx, b.r, semver.MustParse("1.2.3-rc.2"), b.sha)
			if err != nil || res.Tag != "1.2.3-staging.6" || res.Attempts != 1 {
				t.Fatalf("with the hint: %+v, %v; want 1.2.3-staging.6 first time", res, err)
			}
			// The builds with their commits, highest first, on both backends.
			builds, err := StagingBuilds(ctx, b.r, v123)
			if err != nil || len(builds) != 7 || builds[0].Tag != "1.2.3-staging.6" || builds[0].SHA != b.sha || builds[1].N != 5 || builds[6].N != 0 || builds[6].SHA != b.other {
				t.Fatalf("StagingBuilds = %+v, %v", builds, err)
			}
		})
	}
}

// TestGitAnnotatedTag: an annotated tag made by hand at this commit counts
// as at this commit (peeled), and one at another commit as elsewhere.
func TestGitAnnotatedTag(t *testing.T) {
	_, work, sha := repo(t)
	git(t, work, "tag", "-a", "-m", "by hand", "2.0.0")
	git(t, work, "push", "-q", "origin", "2.0.0")
	g := &Git{Dir: work, Remote: "origin"}
	ctx := context.Background()
	res, err := ReserveExact(ctx, g, "2.0.0", sha)
	if err != nil || !res.Existing {
		t.Fatalf("annotated tag at this commit: %+v, %v", res, err)
	}
	other := commit(t, work, "later")
	if _, err := ReserveExact(ctx, g, "2.0.0", other); !errors.Is(err, ErrElsewhere) || !strings.Contains(err.Error(), sha[:12]) {
		t.Fatalf("annotated tag from another commit: %v", err)
	}
}

func TestGitHubAnnotatedTag(t *testing.T) {
	srv := githubtest.New(t, "acme/widgets", "ghp_x")
	c, _ := github.New(srv.URL, "acme/widgets", "ghp_x")
	commitSHA, tagSHA := strings.Repeat("1", 40), strings.Repeat("2", 40)
	srv.SetAnnotatedTag("2.0.0", tagSHA, commitSHA)
	res, err := ReserveExact(context.Background(), &GitHub{Client: c}, "2.0.0", commitSHA)
	if err != nil || !res.Existing {
		t.Fatalf("annotated tag at this commit: %+v, %v", res, err)
	}
}

func TestGitSameCommitTagIsNotReserved(t *testing.T) {
	_, work, sha := repo(t)
	g := &Git{Dir: work, Remote: "origin"}
	ctx := context.Background()
	if err := g.CreateTag(ctx, "1.0.0-staging.1", sha); err != nil {
		t.Fatal(err)
	}
	// git answers "up to date" here and exits 0; that is not a new tag.
	err := g.CreateTag(ctx, "1.0.0-staging.1", sha)
	var ee *ExistsError
	if !errors.As(err, &ee) || ee.SHA != sha {
		t.Fatalf("second create at the same commit: %v, want ExistsError at %s", err, sha)
	}
}

func TestGitRemoteFailures(t *testing.T) {
	_, work, sha := repo(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		remote  string
		want    error
		wantIn  string
		missing bool // CheckRemote fails too
	}{
		{name: "no such remote name", remote: "upstream", want: ErrNoRemote, wantIn: "git remote add upstream", missing: true},
		{name: "path that is not a repository", remote: filepath.Join(t.TempDir(), "nothing.git"), want: ErrNoRemote, wantIn: "does not appear to be a git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Git{Dir: work, Remote: tt.remote}
			if err := g.CheckRemote(ctx); (err != nil) != tt.missing || (err != nil && !errors.Is(err, ErrNoRemote)) {
				t.Fatalf("CheckRemote = %v", err)
			}
			_, err := Reserve(ctx, g, v123, sha)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantIn) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Reserve error %q, want %v on one line containing %q", err, tt.want, tt.wantIn)
			}
		})
	}
}

// TestGitHTTPAuth runs real git against a real git server (git
// http-backend) that wants a password, and checks that refused or missing
// credentials are told apart from a taken tag, with no secret shown.
func TestGitHTTPAuth(t *testing.T) {
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		out, _ := exec.Command("git", "--exec-path").Output()
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	bare, work, sha := repo(t)
	git(t, bare, "config", "http.receivepack", "true")
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "hoist" || p != "s3cret-token" {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	for _, tt := range []struct {
		name, url string
		want      error
	}{
		{name: "no credentials", url: "http://" + host + "/remote.git", want: ErrAuth},
		{name: "wrong token", url: "http://hoist:wrong-secret@" + host + "/remote.git", want: ErrAuth},
		{name: "right token", url: "http://hoist:s3cret-token@" + host + "/remote.git"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Git{Dir: work, Remote: tt.url}
			res, err := Reserve(ctx, g, v123, sha)
			if tt.want == nil {
				if err != nil || res.Tag != "1.2.3-staging.0" {
					t.Fatalf("Reserve = %+v, %v", res, err)
				}
				if at, ok, _ := (&Git{Dir: work, Remote: bare}).Tag(ctx, res.Tag); !ok || at != sha {
					t.Fatalf("tag not on the remote")
				}
				return
			}
			if !errors.Is(err, tt.want) || errors.Is(err, ErrExists) {
				t.Fatalf("Reserve error %v, want %v", err, tt.want)
			}
			for _, secret := range []string{"wrong-secret", "s3cret-token"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows a secret: %q", err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestGitHubFailures(t *testing.T) {
	srv := githubtest.New(t, "acme/widgets", "ghp_test123")
	ctx := context.Background()
	sha := strings.Repeat("c", 40)
	tests := []struct {
		name, repo, token, sha string
		want                   error
		wantIn                 string
	}{
		{name: "bad token", repo: "acme/widgets", token: "nope", sha: sha, want: ErrAuth, wantIn: "401 Bad credentials"},
		{name: "no token", repo: "acme/widgets", sha: sha, want: ErrAuth, wantIn: "GITHUB_TOKEN"},
		{name: "unknown repository", repo: "acme/gadgets", token: "ghp_test123", sha: sha, want: ErrNoRemote, wantIn: "404 Not Found"},
		{name: "commit not on GitHub", repo: "acme/widgets", token: "ghp_test123", sha: "xyz", wantIn: "push the commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := github.New(srv.URL, tt.repo, tt.token)
			_, err := ReserveExact(ctx, &GitHub{Client: c}, "1.2.3-staging.1", tt.sha)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.wantIn)
			}
			if errors.Is(err, ErrExists) || (tt.token != "" && strings.Contains(err.Error(), tt.token)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	_, work, sha := repo(t)
	g := &Git{Dir: work, Remote: "origin"}
	ctx := context.Background()
	c, err := g.Inspect(ctx)
	if err != nil || c.SHA != sha || c.Branch != "main" || len(c.Dirty) != 0 {
		t.Fatalf("clean: %+v, %v", c, err)
	}
	os.WriteFile(filepath.Join(work, "new.txt"), []byte("x"), 0o644)
	git(t, work, "checkout", "-q", "--detach")
	c, err = g.Inspect(ctx)
	if err != nil || c.Branch != "" || len(c.Dirty) != 1 {
		t.Fatalf("dirty and detached: %+v, %v", c, err)
	}
	if _, err := (&Git{Dir: t.TempDir()}).Inspect(ctx); err == nil {
		t.Fatal("Inspect outside a repository succeeded")
	}
}

func TestRedact(t *testing.T) {
	got := redact("fatal: unable to access 'https://x-access-token:ghs_abc@github.com/o/r.git/': 403")
	if strings.Contains(got, "ghs_abc") || !strings.Contains(got, "https://***@github.com") {
		t.Fatalf("redact = %q", got)
	}
}
