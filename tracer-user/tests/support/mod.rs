//! Helpers shared by the integration tests: building real Go programs with the system's Go.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small Go HTTPS client (crypto/tls through net/http).
pub const GO_TLS_CLIENT: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	c := &http.Client{Transport: tr}
	resp, err := c.Get(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Proto, len(b))
}
"#;

/// A Go program that does not link crypto/tls.
pub const GO_HELLO: &str = r#"package main

import "fmt"

func main() { fmt.Println("hello") }
"#;

/// The `go` tool, or a loud failure: these tests need Debian's golang-go
/// (`cargo xtask setup` installs it).
pub fn go() -> PathBuf {
    let go = PathBuf::from("/usr/bin/go");
    assert!(
        go.exists(),
        "TEST CANNOT RUN: /usr/bin/go is missing; install golang-go (cargo xtask setup)"
    );
    go
}

/// `go env GOVERSION`, e.g. `go1.19.8`.
pub fn go_version() -> String {
    let out = Command::new(go())
        .args(["env", "GOVERSION"])
        .envs(go_env(&std::env::temp_dir()))
        .output()
        .expect("run go env");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn go_env(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    // A cache under the test's directory keeps the test independent of $HOME.
    let cache = std::env::temp_dir().join("llm-tracer-test-gocache");
    vec![
        ("GOCACHE", cache),
        ("GOPATH", dir.join("gopath")),
        ("HOME", dir.to_path_buf()),
        ("GO111MODULE", PathBuf::from("off")),
        ("CGO_ENABLED", PathBuf::from("0")),
    ]
}

/// Builds `source` into `dir/name` with extra `go build` flags; returns the binary's path.
pub fn build_go(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.go"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    let status = Command::new(go())
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .current_dir(dir)
        .envs(go_env(dir))
        .status()
        .expect("run go build");
    assert!(status.success(), "go build {name} failed");
    out
}
