//! The coverage report (`llm-tracer check`) on real running processes: python3, curl, node, a Go
//! client (plain and stripped), gnutls-cli and an NSS user.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracer_user::probe::coverage::{ProcessTls, Scanner};
use tracer_user::probe::tlsstack::{StackKind, Support};

/// Kills the child when the test ends, pass or fail.
struct Kid(Child);
impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Kid {
    let child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("TEST CANNOT RUN: {cmd}: {e} (cargo xtask setup installs it)"));
    Kid(child)
}

/// Scans `pid` until `done` holds (the process may not have mapped its libraries yet).
fn wait_for(scanner: &mut Scanner, pid: u32, done: impl Fn(&ProcessTls) -> bool) -> ProcessTls {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = scanner.process(pid);
        if let Some(p) = &p {
            if done(p) {
                return p.clone();
            }
        }
        assert!(Instant::now() < deadline, "pid {pid}: last scan {p:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn one_stack(p: &ProcessTls, kind: StackKind) -> bool {
    p.stacks.len() == 1 && p.stacks[0].stack == kind
}

#[test]
fn check_reports_real_processes() {
    // A TLS server that never answers: clients block in the handshake while we look at them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let port = silent.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let go_plain = support::build_go(dir.path(), "client", support::GO_TLS_CLIENT, &[]);
    let go_stripped = support::build_go(
        dir.path(),
        "client_stripped",
        support::GO_TLS_CLIENT,
        &["-ldflags=-s -w"],
    );
    let go_version = support::go_version();

    let python = spawn(
        "python3",
        &[
            "-c",
            "import ssl, time; print(ssl.OPENSSL_VERSION, flush=True); time.sleep(60)",
        ],
    );
    let curl = spawn("curl", &["-sk", "--max-time", "60", &url]);
    let node = spawn("node", &["-e", "setTimeout(() => {}, 60000)"]);
    let go1 = spawn(go_plain.to_str().unwrap(), &[&url]);
    let go2 = spawn(go_stripped.to_str().unwrap(), &[&url]);
    let gnutls = spawn("gnutls-cli", &["--insecure", "--port", &port, "127.0.0.1"]);
    let nss = spawn(
        "python3",
        &[
            "-c",
            "import ctypes, time; ctypes.CDLL('libnspr4.so'); ctypes.CDLL('libssl3.so'); time.sleep(60)",
        ],
    );

    let ssl_version = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import ssl; print(ssl.OPENSSL_VERSION.split()[1])"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let mut s = Scanner::new("/proc", Support::ALL_PROBES);

    let p = wait_for(&mut s, python.0.id(), |p| {
        one_stack(p, StackKind::OpenSslDynamic)
    });
    assert!(p.covered() == Some(true));
    assert_eq!(p.stacks[0].version.as_deref(), Some(ssl_version.as_str()));
    assert!(p.stacks[0].path.contains("libssl.so"));

    // curl uses OpenSSL, and also maps GnuTLS through one of its other libraries: both listed.
    let p = wait_for(&mut s, curl.0.id(), |p| {
        p.stacks
            .iter()
            .any(|s| s.stack == StackKind::OpenSslDynamic)
    });
    assert_eq!(p.covered(), Some(true));

    let p = wait_for(&mut s, node.0.id(), |p| {
        one_stack(p, StackKind::OpenSslStatic)
    });
    assert_eq!(p.covered(), Some(true));
    assert!(p.stacks[0].version.is_some());

    for go in [&go1, &go2] {
        let p = wait_for(&mut s, go.0.id(), |p| one_stack(p, StackKind::GoCryptoTls));
        assert_eq!(p.covered(), Some(true), "{p:?}");
        assert_eq!(p.stacks[0].version.as_deref(), Some(go_version.as_str()));
    }

    let p = wait_for(&mut s, gnutls.0.id(), |p| {
        p.stacks.iter().any(|s| s.stack == StackKind::GnuTls)
    });
    assert_eq!(p.covered(), Some(true), "{p:?}");
    let gnutls_stack = p
        .stacks
        .iter()
        .find(|s| s.stack == StackKind::GnuTls)
        .unwrap();
    assert!(gnutls_stack
        .version
        .as_deref()
        .is_some_and(|v| v.starts_with("3.")));

    // Support without NSS probes: the verdict says so in one phrase.
    let p = wait_for(&mut s, nss.0.id(), |p| one_stack(p, StackKind::Nss));
    let without_nss = Support {
        nss: false,
        ..Support::ALL_PROBES
    };
    let mut s2 = Scanner::new("/proc", without_nss);
    let q = s2.process(nss.0.id()).unwrap();
    assert_eq!(p.covered(), Some(true));
    assert_eq!(q.covered(), Some(false));
    assert_eq!(q.reason(), Some("NSS: not supported"));

    // The same scan without Go probes calls Go uncovered and says why.
    let q = Scanner::new(
        "/proc",
        Support {
            go: false,
            ..Support::ALL_PROBES
        },
    )
    .process(go2.0.id())
    .unwrap();
    assert_eq!(q.reason(), Some("Go crypto/tls: not supported"));

    // The whole-system scan includes all of them and never fails.
    let all = Scanner::new("/proc", Support::ALL_PROBES).scan_all();
    for kid in [&python, &curl, &node, &go1, &go2, &gnutls, &nss] {
        assert!(all.iter().any(|p| p.pid == kid.0.id()));
    }
    drop(silent);
}
