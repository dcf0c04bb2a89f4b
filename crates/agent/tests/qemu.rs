//! The QEMU driver against real QEMU and the test guest (tools/build-test-image.sh; the test
//! command builds it and sets HANEUL_TEST_IMAGE): probe the accelerator, boot with a config
//! drive, find the running instance again as a restarted agent would, pause and resume, and
//! stop it through the ACPI power button, then forcibly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use haneul_agent::virt::{configdrive, console, qemu, Accel, Domain, StopHow};

fn test_image() -> PathBuf {
    let path = std::env::var("HANEUL_TEST_IMAGE")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            std::fs::read_dir("/var/cache/haneul-ci/images")
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("haneul-testimg.qcow2"))
                .find(|p| p.exists())
        })
        .expect("no test image: run tools/build-test-image.sh and set HANEUL_TEST_IMAGE");
    assert!(path.exists(), "{} does not exist", path.display());
    path
}

fn run(cmd: &str, args: &[&str]) {
    let ok = std::process::Command::new(cmd).args(args).status().unwrap_or_else(|e| panic!("{cmd}: {e}")).success();
    assert!(ok, "{cmd} {args:?} failed");
}

fn wait_console(d: &Domain, marker: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = std::fs::read_to_string(d.console_log()).unwrap_or_default();
        if log.contains(marker) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {marker:?} on the console within {timeout:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn domain(dir: &Path, image: &Path, accel: Accel) -> Domain {
    let uuid = uuid::Uuid::new_v4().to_string();
    let disk = dir.join("disk.qcow2");
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.to_str().unwrap(), disk.to_str().unwrap()],
    );
    let iso = dir.join("config.iso");
    let meta = format!(r#"{{"uuid": "{uuid}", "hostname": "agent-test", "name": "agent-test"}}"#);
    let files = vec![
        ("openstack/latest/meta_data.json".to_string(), meta.into_bytes()),
        ("openstack/latest/user_data".to_string(), b"#!/bin/sh\necho config-drive-user-data\n".to_vec()),
    ];
    configdrive::build(&iso, &files).await.expect("config drive");
    Domain {
        uuid,
        name: "agent-test".into(),
        memory_mib: 256,
        vcpus: 1,
        disk,
        config_drive: Some(iso),
        accel,
        nice: 10,
        dir: dir.to_path_buf(),
        incoming: None,
        rescue_disk: None,
        nics: Vec::new(),
        netns: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_boots_is_adopted_pauses_and_stops() {
    let image = test_image();
    let dir = std::env::temp_dir().join(format!("haneul-agent-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let images = image.parent().unwrap();
    // Whatever the probe decides must then boot the guest below.
    let accel = qemu::probe_accel(
        &dir,
        &images.join("vmlinuz"),
        &images.join("initrd.gz"),
        "HANEUL-TESTIMG: booted",
        Duration::from_secs(15),
    )
    .await;
    eprintln!("accelerator: {accel:?}");
    let d = domain(&dir, &image, accel).await;

    let pid = qemu::start(&d).await.expect("QEMU starts");
    // The guest yields the CPU to the host's own work: every QEMU thread at nice 10 (the
    // 19th field of /proc/<pid>/task/<tid>/stat, counted after the command name).
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        let nice = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(16).unwrap().to_string();
        assert_eq!(nice, "10", "thread {:?} of QEMU", task.file_name());
    }
    let log = wait_console(&d, "HANEUL-TESTIMG: ready", Duration::from_secs(120));
    assert!(log.contains(&format!("HANEUL-TESTIMG: instance-id {}", d.uuid)), "{log}");
    assert!(log.contains("config-drive-user-data"), "{log}");
    assert!(console::tail(&d.console_log(), Some(20)).unwrap().contains("HANEUL-TESTIMG: ready"));

    // A restarted agent finds the same process from the instance directory alone.
    let again = Domain { config_drive: None, ..d.clone() };
    assert_eq!(qemu::running_pid(&again), Some(pid));
    // A pid file naming another process is not taken for the instance.
    let other = Domain { uuid: uuid::Uuid::new_v4().to_string(), ..d.clone() };
    assert_eq!(qemu::running_pid(&other), None);

    qemu::set_paused(&d, true).await.unwrap();
    assert_eq!(qemu::status(&d).await.unwrap(), "paused");
    qemu::set_paused(&d, false).await.unwrap();
    assert_eq!(qemu::status(&d).await.unwrap(), "running");

    // Suspend: the guest's state goes to a file and QEMU ends; it carries on from there
    // (the same boot: no second "booted" line, and it still answers the power button).
    let state = dir.join("suspend.state");
    qemu::save(&d, &state, Duration::from_secs(120)).await.expect("the state is saved");
    assert_eq!(qemu::running_pid(&d), None);
    assert!(std::fs::metadata(&state).unwrap().len() > 1 << 20);
    let resumed = Domain { incoming: Some(state.clone()), ..d.clone() };
    qemu::start(&resumed).await.expect("QEMU starts from the saved state");
    qemu::wait_incoming(&d, Duration::from_secs(120)).await.expect("the state loads");
    assert_eq!(qemu::status(&d).await.unwrap(), "paused");
    qemu::set_paused(&d, false).await.unwrap();
    assert_eq!(qemu::status(&d).await.unwrap(), "running");
    let log = std::fs::read_to_string(d.console_log()).unwrap();
    assert_eq!(log.matches("HANEUL-TESTIMG: booted").count(), 1, "{log}");

    assert_eq!(qemu::stop(&d, Duration::from_secs(60)).await.unwrap(), StopHow::Graceful);
    wait_console(&d, "HANEUL-TESTIMG: powering off", Duration::from_secs(5));
    assert_eq!(qemu::running_pid(&d), None);
    assert_eq!(qemu::stop(&d, Duration::from_secs(1)).await.unwrap(), StopHow::NotRunning);

    // Without a graceful window QEMU is told to quit.
    let pid = qemu::start(&d).await.expect("QEMU starts again");
    assert!(pid > 0);
    assert_eq!(qemu::stop(&d, Duration::ZERO).await.unwrap(), StopHow::Quit);
    assert_eq!(qemu::running_pid(&d), None);
    std::fs::remove_dir_all(&dir).ok();
}
