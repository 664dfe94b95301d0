package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStoreOf(t *testing.T) {
	tests := []struct {
		name    string
		driver  string
		status  [][2]string
		want    Store
		wantErr string
	}{
		{name: "overlay2 (Docker 20.10 to 28)", driver: "overlay2", status: [][2]string{{"Backing Filesystem", "extfs"}}, want: StoreClassic},
		{name: "vfs", driver: "vfs", want: StoreClassic},
		{name: "containerd store (Docker 29, Desktop)", driver: "overlayfs", status: [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}, want: StoreContainerd},
		{name: "containerd store, another snapshotter", driver: "native", status: [][2]string{{"driver-type", "io.containerd.snapshotter.v1"}}, want: StoreContainerd},
		{name: "unknown driver-type", driver: "x", status: [][2]string{{"driver-type", "io.example.v9"}}, wantErr: "io.example.v9"},
		{name: "unknown graph driver", driver: "quantumfs", wantErr: `"quantumfs"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storeOf(tc.driver, tc.status)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("storeOf = %v, %v; want an error naming %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("storeOf = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCheckAPI(t *testing.T) {
	tests := []struct {
		api string
		ok  bool
	}{
		{"1.41", true}, {"1.52", true}, {"1.100", true},
		{"1.40", false}, {"1.12", false}, {"", false},
	}
	for _, tc := range tests {
		err := checkAPI(tc.api)
		if (err == nil) != tc.ok {
			t.Errorf("checkAPI(%q) = %v, want ok %v", tc.api, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), MinAPI) {
			t.Errorf("checkAPI(%q) = %v: does not say what is needed", tc.api, err)
		}
	}
}

// TestConnectRefuses: an engine Hoist cannot work with is refused at
// Connect with one line naming the engine, what is missing and what to do.
// No such engine runs here, so a server speaks the two documented
// answers Connect reads (GET /_ping's API-Version header and GET /info).
func TestConnectRefuses(t *testing.T) {
	tests := []struct {
		name   string
		api    string
		driver string
		want   []string
	}{
		{name: "API too old", api: "1.40", driver: "overlay2", want: []string{"API 1.40", "needs " + MinAPI, "upgrade it"}},
		{name: "unknown store", api: "1.47", driver: "quantumfs", want: []string{"version 27.1.0", `"quantumfs"`, "does not know", "containerd-snapshotter=true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Api-Version", tc.api)
				if strings.HasSuffix(r.URL.Path, "/info") {
					fmt.Fprintf(w, `{"Driver":%q,"ServerVersion":"27.1.0"}`, tc.driver)
					return
				}
				fmt.Fprint(w, "OK")
			}))
			t.Cleanup(srv.Close)
			host := "tcp://" + strings.TrimPrefix(srv.URL, "http://")
			_, err := Connect(context.Background(), Options{Host: host})
			if err == nil {
				t.Fatal("Connect accepted the engine")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, host) {
				t.Errorf("not one line naming the engine %s: %q", host, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
		})
	}
}
