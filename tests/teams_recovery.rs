//! Border links after restarts, deaths and changes of mind: what another team's border
//! brought must not outlive the reason it was brought (found by a new-user probe).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::smtp::SmtpSink;
use common::teams::{diamond, mail_config, team, team_with, Plan};
use common::wait_for;

#[test]
fn the_alerts_a_dead_border_brought_leave_the_rest_of_its_team() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 2, &plan);
    let mut b = team("b", 2, &plan);
    a.trust_links();
    b.trust_links();
    a.raise(1, "disk");
    assert!(wait_for(Duration::from_secs(30), || b
        .all_show(("a", "a2", "disk"), "firing"))
    .is_some());
    b.cluster.agents[0].kill();
    // b2 cannot hear from a any more: a's alert must not stay on it as if it were current.
    assert!(
        wait_for(Duration::from_secs(30), || !b
            .alerts_on(1)
            .keys()
            .any(|k| k.0 == "a"))
        .is_some(),
        "b2 still shows what the dead b1 brought: {:?}",
        b.alerts_on(1)
    );
    // b1 back: the alert comes back with it.
    b.cluster.agents[0].restart_as_started();
    assert!(
        wait_for(Duration::from_secs(30), || b
            .all_show(("a", "a2", "disk"), "firing"))
        .is_some(),
        "{:?}",
        b.alerts_on(1)
    );
}

#[test]
fn withdrawing_accept_takes_the_alerts_back_and_granting_it_again_brings_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 1, &plan);
    let b = team("b", 2, &plan);
    a.trust_links();
    b.trust_links();
    a.raise(0, "disk");
    assert!(wait_for(Duration::from_secs(30), || b
        .all_show(("a", "a1", "disk"), "firing"))
    .is_some());
    let id = b.link("a").unwrap()["link_id"].as_str().unwrap().to_owned();
    let out = b
        .border()
        .cli(&["trust", "remove", &id, "--what", "accept-alerts-from"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(20), || !b.any_shows_team("a")).is_some(),
        "b still shows a's alert after withdrawing accept: {:?}",
        b.alerts_on(1)
    );
    a.clear(0, "disk");
    a.raise(0, "load");
    b.trust_links();
    assert!(
        wait_for(Duration::from_secs(30), || b
            .all_show(("a", "a1", "disk"), "resolved")
            && b.all_show(("a", "a1", "load"), "firing"))
        .is_some(),
        "what changed while b refused it did not come: {:?}",
        b.alerts_on(1)
    );
}

#[test]
fn a_link_changed_from_transit_to_direct_takes_back_the_third_teams_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(
        &["a", "b", "c"],
        &[("a", "b", "transit"), ("b", "c", "transit")],
        dir.path(),
    );
    let a = team("a", 1, &plan);
    let b = team("b", 1, &plan);
    let mut c = team("c", 2, &plan);
    for t in [&a, &b, &c] {
        t.trust_links();
    }
    a.raise(0, "disk");
    assert!(wait_for(Duration::from_secs(30), || c
        .all_show(("a", "a1", "disk"), "firing"))
    .is_some());
    let config = c.cluster.agents[0].config.clone().unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("mode = \"transit\"", "mode = \"direct\""),
    )
    .unwrap();
    c.cluster.agents[0].restart_as_started();
    assert!(
        wait_for(Duration::from_secs(30), || !c.any_shows_team("a")).is_some(),
        "c still shows a's alert over a direct link: {:?}",
        c.alerts_on(1)
    );
    assert_eq!(c.link("b").unwrap()["mode"], "direct");
}

#[test]
fn a_border_restarted_while_its_link_is_down_sends_no_false_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let smtp = SmtpSink::start();
    let mail = mail_config(&smtp, "1s");
    let mut a = team_with("a", 2, &plan, &mail, false);
    let mut b = team("b", 1, &plan);
    a.trust_links();
    b.trust_links();
    assert!(wait_for(Duration::from_secs(20), || a
        .link("b")
        .is_some_and(|l| l["state"] == "up"))
    .is_some());
    b.cluster.agents[0].kill();
    let firing = smtp.wait_for_count(1, Duration::from_secs(60));
    assert_eq!(firing[0].subject, "rover: FIRING team-link/b on a1");
    a.cluster.agents[0].restart_as_started();
    // Past the link timeout after the restart: still firing, and no RESOLVED was sent.
    assert!(wait_for(Duration::from_secs(20), || a
        .link("b")
        .is_some_and(|l| l["state"] == "down"))
    .is_some());
    let resolved = wait_for(Duration::from_secs(6), || {
        smtp.messages()
            .iter()
            .any(|m| m.subject.contains("RESOLVED"))
    });
    assert!(
        resolved.is_none(),
        "{:?}",
        smtp.messages()
            .iter()
            .map(|m| &m.subject)
            .collect::<Vec<_>>()
    );
    assert!(a.all_show(("a", "a1", "team-link/b"), "firing"));
    // Not even for a moment: no agent of the team saw it resolved.
    for agent in &a.cluster.agents {
        let log = agent.log();
        let flipped = log
            .lines()
            .filter(|l| l.contains("team-link/b") && l.contains("Resolved"))
            .collect::<Vec<_>>();
        assert!(flipped.is_empty(), "{}: {flipped:?}", agent.name);
    }
}

#[test]
fn a_link_the_peer_refuses_after_the_handshake_is_never_up_and_is_not_dialed_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    // x's link to a uses the key of the a-b link: a shakes hands, then refuses x's Hello.
    let plan = Plan::new(&["a", "b", "x"], &[("a", "b", "direct")], dir.path());
    let a = team("a", 1, &plan);
    let key = plan.ends.iter().find(|e| e.0 == "a").unwrap().3.clone();
    let x_config = format!(
        "[team]\nlink_bind = \"{}\"\nlink_timeout = \"3s\"\n[[team.link]]\nteam = \"a\"\npeer = \"{}\"\nkey_file = \"{}\"\n",
        plan.listen["x"],
        plan.listen["a"],
        key.display()
    );
    let mut x = common::Cluster::new();
    x.config_for = Some(Box::new(move |_| x_config.clone()));
    x.add_agent_called("x1", &["--team".into(), "x".into()]);
    let refused_at_a = || {
        a.link("b")
            .map(|l| l["dropped"]["wrong_team"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(wait_for(Duration::from_secs(20), || refused_at_a() > 0).is_some());
    // Past x's link timeout: its link is down (never up), its ROVER alert raised.
    let x_link = || {
        x.agents[0]
            .get_json("/v1/teams")
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
            .unwrap()
    };
    assert!(
        wait_for(Duration::from_secs(20), || x.agents[0]
            .alerts()
            .iter()
            .any(|al| al["name"] == "team-link/a" && al["state"] == "firing"))
        .is_some(),
        "{:?}",
        x_link()
    );
    assert_eq!(x_link()["state"], "down", "{:?}", x_link());
    assert!(
        x_link()["dropped"].get("slow_peer").is_none(),
        "{:?}",
        x_link()
    );
    // Backoff: a handful of tries in these seconds, not one every 100 ms.
    let tries = refused_at_a();
    assert!(tries < 20, "{tries} refused Hellos: dialed in a loop");
}

#[test]
fn stacked_border_kills_and_restarts_in_a_transit_diamond_lose_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let plan = diamond(dir.path());
    let a = team("a", 2, &plan);
    let mut b = team("b", 1, &plan);
    let mut c = team("c", 1, &plan);
    let mut d = team("d", 2, &plan);
    for t in [&a, &b, &c, &d] {
        t.trust_links();
    }
    d.raise(1, "disk");
    d.raise(1, "fresh");
    a.raise(1, "load");
    let everywhere = |teams: &[&common::teams::Team]| {
        teams.iter().all(|t| {
            t.all_show(("d", "d2", "disk"), "firing")
                && t.all_show(("d", "d2", "fresh"), "firing")
                && (t.name == "a" || t.all_show(("a", "a2", "load"), "firing"))
        })
    };
    assert!(wait_for(Duration::from_secs(30), || everywhere(&[&a, &b, &c])).is_some());
    // The probe's sequence: b's border killed and back, c's killed, d's stopped, then c's and
    // d's borders started together.
    b.cluster.agents[0].kill();
    assert!(wait_for(Duration::from_secs(20), || a
        .link("b")
        .is_some_and(|l| l["state"] == "lost"))
    .is_some());
    b.cluster.agents[0].restart_as_started();
    c.cluster.agents[0].kill();
    assert!(wait_for(Duration::from_secs(20), || a
        .link("c")
        .is_some_and(|l| l["state"] == "lost"))
    .is_some());
    d.cluster.agents[0].signal("TERM");
    assert!(d.cluster.agents[0].wait_exit(Duration::from_secs(20)));
    c.cluster.agents[0].restart_as_started();
    d.cluster.agents[0].restart_as_started();
    assert!(
        wait_for(Duration::from_secs(60), || everywhere(&[&a, &b, &c])).is_some(),
        "a: {:?}\nb: {:?}\nc: {:?}\nc's links: {:?}\nd's links: {:?}",
        a.alerts_on(1),
        b.alerts_on(0),
        c.alerts_on(0),
        c.links(),
        d.links()
    );
}

#[test]
fn with_notify_remote_a_lost_link_sends_no_false_resolved_and_history_keeps_teams_apart() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let smtp = SmtpSink::start();
    let mail = mail_config(&smtp, "1s");
    let a = team_with("a", 2, &plan, &mail, true);
    let mut b = team("b", 1, &plan);
    a.trust_links();
    b.trust_links();
    b.raise(0, "disk");
    let mails = smtp.wait_for_count(1, Duration::from_secs(60));
    assert_eq!(mails[0].subject, "rover: FIRING disk on b1 (team b)");
    b.cluster.agents[0].kill();
    // The link is lost: b's alert is taken back, and a's border raises its ROVER alert.
    let mails = smtp.wait_for_count(2, Duration::from_secs(60));
    assert_eq!(mails[1].subject, "rover: FIRING team-link/b on a1");
    b.cluster.agents[0].restart_as_started();
    assert!(wait_for(Duration::from_secs(30), || a
        .all_show(("b", "b1", "disk"), "firing"))
    .is_some());
    let mails = smtp.wait_for_count(3, Duration::from_secs(60));
    assert_eq!(mails[2].subject, "rover: RESOLVED team-link/b on a1");
    let more = wait_for(Duration::from_secs(5), || smtp.messages().len() > 3);
    let subjects: Vec<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    assert!(more.is_none(), "{subjects:?}");
    // b1's alert is not in the history of a's hosts, not even under a host called b1.
    let out = a.cluster.agents[1].cli(&["history", "--host", "b1"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("disk"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn team_link_commands_refuse_another_links_key_and_a_removed_links_rover_alert_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan::new(&["a", "b"], &[("a", "b", "direct")], dir.path());
    let mut a = team("a", 1, &plan);
    a.trust_links();
    let key = plan.ends.iter().find(|e| e.0 == "a").unwrap().3.clone();
    let key_s = key.to_str().unwrap();
    let config = a.cluster.agents[0].config.clone().unwrap();
    let config_s = config.to_str().unwrap();
    // b's key for another team: refused, nothing changed.
    let out = a.border().cli(&[
        "team",
        "link",
        "add",
        "g",
        "--peer",
        "127.0.0.1:7999",
        "--key-file",
        key_s,
        "--config",
        config_s,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!std::fs::read_to_string(&config)
        .unwrap()
        .contains("team = \"g\""));
    // Removing "g" with b's key: refused, b's recommendation stays.
    let out = a
        .border()
        .cli(&["team", "link", "remove", "g", "--key-file", key_s]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a.link("b").unwrap()["trusted_send"], true);
    // b never answers: its ROVER alert fires; the link is taken out and the agent restarted:
    // the alert is cleared.
    assert!(wait_for(Duration::from_secs(20), || a
        .all_show(("a", "a1", "team-link/b"), "firing"))
    .is_some());
    let out = a.border().cli(&[
        "team",
        "link",
        "remove",
        "b",
        "--key-file",
        key_s,
        "--config",
        config_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.cluster.agents[0].restart_as_started();
    assert!(
        wait_for(Duration::from_secs(20), || a
            .all_show(("a", "a1", "team-link/b"), "resolved"))
        .is_some(),
        "{:?}",
        a.alerts_on(0)
    );
}
