package gitref

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hoistci/hoist/pkg/github"
)

// GitHub is a Reserver on GitHub's Git references API: POST
// /repos/{owner}/{repo}/git/refs answers 201 when it created the tag and
// 422 "Reference already exists" when the tag is there. It needs no
// checkout and no git credentials, only a token with contents: write.
type GitHub struct {
	Client *github.Client
}

func (h *GitHub) String() string { return "GitHub " + h.Client.Repo() }

// CreateTag creates refs/tags/name at sha.
func (h *GitHub) CreateTag(ctx context.Context, name, sha string) error {
	body := map[string]string{"ref": "refs/tags/" + name, "sha": sha}
	err := h.Client.Do(ctx, http.MethodPost, "./git/refs", body, nil)
	if err == nil {
		return nil
	}
	var ae *github.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity {
		if strings.Contains(strings.ToLower(ae.Message), "reference already exists") {
			return &ExistsError{Tag: name}
		}
		if strings.Contains(strings.ToLower(ae.Message), "object does not exist") {
			return fmt.Errorf("commit %s is not on GitHub (%w): push the commit before reserving a tag for it", short(sha), err)
		}
	}
	return h.wrap(err)
}

// wrap marks 401/403 as ErrAuth and 404 as ErrNoRemote.
func (h *GitHub) wrap(err error) error {
	switch github.StatusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNoRemote, err)
	}
	return err
}

type gitRef struct {
	Ref    string `json:"ref"`
	Object struct {
		SHA  string `json:"sha"`
		Type string `json:"type"`
	} `json:"object"`
}

// Tag reads refs/tags/name, peeling an annotated tag to its commit.
func (h *GitHub) Tag(ctx context.Context, name string) (string, bool, error) {
	var r gitRef
	err := h.Client.Do(ctx, http.MethodGet, "./git/ref/tags/"+url.PathEscape(name), nil, &r)
	if github.StatusOf(err) == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, h.wrap(err)
	}
	sha, typ := r.Object.SHA, r.Object.Type
	for i := 0; typ == "tag" && i < 5; i++ {
		var t struct {
			Object struct {
				SHA  string `json:"sha"`
				Type string `json:"type"`
			} `json:"object"`
		}
		if err := h.Client.Do(ctx, http.MethodGet, "./git/tags/"+sha, nil, &t); err != nil {
			return "", false, fmt.Errorf("peeling annotated tag %s: %w", name, h.wrap(err))
		}
		sha, typ = t.Object.SHA, t.Object.Type
	}
	return sha, sha != "", nil
}

// Tags lists tags starting with prefix through matching-refs, page by page.
func (h *GitHub) Tags(ctx context.Context, prefix string) ([]string, error) {
	const per = 100
	var tags []string
	for page := 1; ; page++ {
		var refs []gitRef
		path := fmt.Sprintf("./git/matching-refs/tags/%s?per_page=%d&page=%d", url.PathEscape(prefix), per, page)
		if err := h.Client.Do(ctx, http.MethodGet, path, nil, &refs); err != nil {
			return nil, h.wrap(err)
		}
		for _, r := range refs {
			tags = append(tags, strings.TrimPrefix(r.Ref, "refs/tags/"))
		}
		if len(refs) < per {
			return tags, nil
		}
	}
}
