package release

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hoistci/hoist/pkg/github"
)

// GitHubRelease is a release to create or update.
type GitHubRelease struct {
	Tag        string // existing tag, or one GitHub creates at Commit
	Commit     string
	Name       string
	Body       string
	Prerelease bool
}

// Published is the outcome of Publish.
type Published struct {
	ID      int64
	URL     string
	Created bool // false: an existing release was updated
}

type ghRelease struct {
	ID      int64  `json:"id"`
	HTMLURL string `json:"html_url"`
}

// Publish creates the release of r.Tag, or updates it when it exists, so a
// re-run of a release converges instead of failing. A prerelease is never
// made GitHub's latest release; a release is, when it is the highest.
func Publish(ctx context.Context, c *github.Client, r GitHubRelease) (*Published, error) {
	body := map[string]any{
		"name":       r.Name,
		"body":       r.Body,
		"draft":      false,
		"prerelease": r.Prerelease,
	}
	if r.Prerelease {
		body["make_latest"] = "false"
	} else {
		// legacy: latest by date and semantic version, so publishing 1.2.9
		// after 1.3.0 does not make 1.2.9 the latest.
		body["make_latest"] = "legacy"
	}
	for try := 0; try < 2; try++ {
		var cur ghRelease
		err := c.Do(ctx, http.MethodGet, "./releases/tags/"+url.PathEscape(r.Tag), nil, &cur)
		switch {
		case err == nil:
			var out ghRelease
			if err := c.Do(ctx, http.MethodPatch, "./releases/"+strconv.FormatInt(cur.ID, 10), body, &out); err != nil {
				return nil, fmt.Errorf("updating the GitHub release of %s: %w", r.Tag, err)
			}
			return &Published{ID: out.ID, URL: out.HTMLURL}, nil
		case github.StatusOf(err) != http.StatusNotFound:
			return nil, fmt.Errorf("reading the GitHub release of %s: %w", r.Tag, err)
		}
		create := map[string]any{"tag_name": r.Tag, "target_commitish": r.Commit}
		for k, v := range body {
			create[k] = v
		}
		var out ghRelease
		err = c.Do(ctx, http.MethodPost, "./releases", create, &out)
		if err == nil {
			return &Published{ID: out.ID, URL: out.HTMLURL, Created: true}, nil
		}
		if github.StatusOf(err) == http.StatusUnprocessableEntity && alreadyExists(err) && try == 0 {
			continue // created by a concurrent run since the GET: update it
		}
		return nil, fmt.Errorf("creating the GitHub release of %s: %w", r.Tag, err)
	}
	return nil, fmt.Errorf("creating the GitHub release of %s: it exists but cannot be read back: run again", r.Tag)
}

func alreadyExists(err error) bool {
	var ae *github.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, e := range ae.Errors {
		if e.Code == "already_exists" {
			return true
		}
	}
	return false
}
