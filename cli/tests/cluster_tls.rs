//! Mutual TLS across a real scheduler, two executors and clients, with certificates this test makes:
//! a multi-stage query (executors fetch each other's shuffle output) runs over TLS; a stranger's
//! executor never joins; a client without a cluster certificate, or with one from another CA, is
//! refused; a plaintext request gets nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{backbeat, free_port};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA and a certificate it signs for every loopback address the processes use.
struct Pki {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "127.0.0.2".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} node"));
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();

    let pki = Pki { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")), ca: dir.join(format!("{name}-ca.pem")) };
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    pki
}

fn tls_args(pki: &Pki) -> Vec<String> {
    ["--cluster-cert", pki.cert.to_str().unwrap(), "--cluster-key", pki.key.to_str().unwrap(), "--cluster-ca", pki.ca.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Child processes, killed on drop, with their logs.
struct Processes(Vec<(Child, PathBuf)>);

impl Processes {
    fn spawn(&mut self, dir: &Path, name: &str, args: &[String]) {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_backbeat"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.0.push((child, log));
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.0[i].1).unwrap_or_default()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn executor_args(scheduler: u16, pki: &Pki, work: &Path) -> Vec<String> {
    let (flight, grpc) = (free_port().unwrap(), free_port().unwrap());
    let mut args: Vec<String> = ["executor", "--scheduler", &format!("127.0.0.1:{scheduler}"), "--bind", &format!("127.0.0.2:{flight}"), "--grpc-port", &grpc.to_string(), "--concurrency", "2", "--work-dir", work.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tls_args(pki));
    args
}

/// `backbeat status` over TLS: the executors' health column.
fn executor_health(url: &str, pki: &Pki) -> String {
    let out = backbeat().args(["status", "--cluster", url, "--format", "csv"]).args(tls_args(pki)).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cluster_speaks_mutual_tls_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let cluster = make_pki(dir.path(), "cluster");
    let stranger = make_pki(dir.path(), "stranger");

    let port = free_port().unwrap();
    let url = format!("df://127.0.0.1:{port}");
    let mut procs = Processes(vec![]);
    let mut scheduler = vec!["scheduler".to_string(), "--bind".into(), format!("127.0.0.1:{port}")];
    scheduler.extend(tls_args(&cluster));
    procs.spawn(dir.path(), "scheduler", &scheduler);
    for i in 0..2 {
        procs.spawn(dir.path(), &format!("executor-{i}"), &executor_args(port, &cluster, &dir.path().join(format!("w{i}"))));
    }
    let start = Instant::now();
    while executor_health(&url, &cluster).matches(",alive").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "executors did not register over TLS\n{}\n{}", procs.log(0), procs.log(1));
        std::thread::sleep(Duration::from_millis(300));
    }

    // A write and a two-stage aggregate: client → scheduler → executors → each other, all TLS.
    let lake_arg = lake.to_str().unwrap();
    let sql = |pki: Option<&Pki>, q: &str| {
        let mut cmd = backbeat();
        cmd.args(["sql", "--cluster", &url, "--lake", lake_arg, "--format", "csv", q]);
        if let Some(pki) = pki {
            cmd.args(tls_args(pki));
        }
        cmd.output().unwrap()
    };
    let out = sql(Some(&cluster), "CREATE TABLE t AS SELECT id, id % 10 AS g FROM (SELECT unnest(range(0, 100000)) AS id)");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), procs.log(0));
    let out = sql(Some(&cluster), "SELECT count(DISTINCT g) AS groups, count(*) AS n FROM t");
    assert!(String::from_utf8_lossy(&out.stdout).contains("10,100000"), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // A stranger's executor, with a certificate from another CA, never joins.
    procs.spawn(dir.path(), "stranger-executor", &executor_args(port, &stranger, &dir.path().join("w9")));
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(executor_health(&url, &cluster).matches(",alive").count(), 2, "{}", procs.log(3));
    let stranger_log = procs.log(3);
    assert!(
        stranger_log.contains("executor") && (stranger_log.contains("certificate") || stranger_log.contains("TLS") || stranger_log.contains("tls")),
        "the stranger's executor ran and was refused at the handshake:\n{stranger_log}"
    );

    // Clients: no certificate, a stranger's certificate; both refused, with a message.
    for (who, pki) in [("no certificate", None), ("a stranger's certificate", Some(&stranger))] {
        let out = sql(pki, "SELECT count(*) FROM t");
        assert!(!out.status.success(), "a client with {who} ran a query");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "a client with {who} failed silently");
        assert!(!String::from_utf8_lossy(&out.stdout).contains('1'), "a client with {who} got rows");
    }
    // A plaintext REST request gets no answer.
    let out = backbeat().args(["status", "--cluster", &url]).output().unwrap();
    assert!(!out.status.success(), "plaintext status answered: {}", String::from_utf8_lossy(&out.stdout));
    assert!(procs.log(0).contains("TLS handshake refused"), "the scheduler logs refused handshakes:\n{}", procs.log(0));
}
