//! `cargo xtask demo`: the product working on a machine with no internet.
//!
//! Starts a local HTTPS endpoint that answers in OpenAI, Anthropic, Gemini and Ollama shapes
//! (tests/fakes/llm_server.py, standard library only), starts the tracer with its console output,
//! then makes real client calls with curl, python3 and node (streaming and not). What you see is
//! the tracer's own console: one line per call, recognised from the TLS plaintext alone.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    setup,
    util::{self, root, run as sh},
};

pub fn run() -> Result<()> {
    setup::run(setup::For::Build)?;
    util::build_release()?;
    if !util::is_root() {
        bail!("the demo attaches uprobes and needs root: run `sudo -E cargo xtask demo`");
    }
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    make_cert(&dir)?;

    let mut server = Command::new("python3")
        .arg(root().join("tests/fakes/llm_server.py"))
        .args(["--cert", "cert.pem", "--key", "key.pem"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the local LLM endpoint (python3)")?;
    let port = read_port(&mut server)?;
    eprintln!("demo: a local LLM endpoint answers on https://127.0.0.1:{port}");

    let mut tracer = Command::new(util::tracer_bin())
        .args(["run", "--console"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting llm-tracer")?;
    let lines = forward_until_ready(&mut tracer)?;

    let base = format!("https://127.0.0.1:{port}");
    let result = clients(&base, &dir);
    thread::sleep(Duration::from_millis(800));
    // SIGINT: the tracer flushes and exits.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let _ = tracer.wait();
    let _ = lines.join();
    let _ = server.kill();
    let _ = server.wait();
    result?;
    eprintln!("\ndemo: every line above came from the tracer, reading TLS plaintext through uprobes on libssl (curl, python3) and on the node binary.");
    Ok(())
}

fn make_cert(dir: &Path) -> Result<()> {
    if dir.join("cert.pem").exists() {
        return Ok(());
    }
    sh(Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .stderr(Stdio::null()))
}

fn read_port(server: &mut Child) -> Result<u16> {
    let out = server.stdout.take().context("no server stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    line.trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the local endpoint did not start: {line:?}"))
}

/// Echoes the tracer's stdout to ours; returns once it printed `ready`.
fn forward_until_ready(tracer: &mut Child) -> Result<thread::JoinHandle<()>> {
    let out = tracer.stdout.take().context("no tracer stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("ready") {
                let _ = tx.send(());
            }
            println!("{line}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            return Ok(handle);
        }
        if let Some(status) = tracer.try_wait()? {
            bail!("llm-tracer exited before it was ready ({status})");
        }
        if Instant::now() > deadline {
            bail!("llm-tracer was not ready within 60 s");
        }
    }
}

const CHAT: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello from the demo"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me a haiku"}]}"#;
const MESSAGES: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"hi claude"}]}"#;

const PY_CLIENT: &str = r#"
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
def post(path, body):
    req = urllib.request.Request(sys.argv[1] + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "authorization": "Bearer demo-not-a-key"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return r.read()
post("/v1/chat/completions", {"model": "gpt-4.1", "stream": True, "stream_options": {"include_usage": True},
                              "messages": [{"role": "user", "content": "python streaming call"}]})
post("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "hello gemini"}]}]})
post("/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": "hello ollama"}]})
"#;

const NODE_CLIENT: &str = r#"
const base = process.argv[1];
const r = await fetch(base + "/v1/messages", {method: "POST", headers: {"content-type": "application/json", "x-api-key": "demo-not-a-key"},
  body: JSON.stringify({model: "claude-haiku-4-5", max_tokens: 100, messages: [{role: "user", content: "node says hi"}]})});
await r.text();
"#;

/// Runs a client without echoing its inline script; fails with its stderr.
fn quiet(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("demo: {what}");
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn clients(base: &str, dir: &Path) -> Result<()> {
    let cert = dir.join("cert.pem");
    let curl = |path: &str, body: &str| -> Result<()> {
        quiet(
            &format!("curl POST {path}"),
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "--cacert"])
                .arg(&cert)
                .args([
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "authorization: Bearer demo-not-a-key",
                ])
                .args(["-d", body])
                .arg(format!("{base}{path}")),
        )
    };
    curl("/v1/chat/completions", CHAT)?;
    curl("/v1/chat/completions", CHAT_STREAM)?;
    curl("/v1/messages", MESSAGES)?;
    quiet(
        "python3 (urllib: OpenAI stream, Gemini, Ollama)",
        Command::new("python3")
            .args(["-c", PY_CLIENT, base])
            .arg(&cert),
    )?;
    if Command::new("node").arg("--version").output().is_ok() {
        quiet(
            "node (fetch: Anthropic)",
            Command::new("node")
                .args(["--input-type=module", "-e", NODE_CLIENT, base])
                .env("NODE_EXTRA_CA_CERTS", &cert),
        )?;
    }
    Ok(())
}
