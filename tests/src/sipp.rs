//! SIPp scenarios the tests build: a phone's message lamp (a message-summary subscription
//! that checks each NOTIFY's counts), and SIPp's count of successful calls.

/// A scenario that subscribes to message-summary as `[field0]` (answering the challenge
/// with `[field1]`, an `[authentication …]` keyword), then answers NOTIFYs whose
/// Voice-Message must be each of `counts` in turn (`1/0`: one new, none heard); the i-th
/// leaves a file `lamp-i` in SIPp's working folder.
pub fn mwi_scenario(counts: &[&str]) -> String {
    let subscribe = |cseq: u32, auth: &str| {
        format!(
            "<send retrans=\"500\"><![CDATA[\nSUBSCRIBE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag=mwi[pid]\nTo: <sip:[field0]@[remote_ip]>\nCall-ID: [call_id]\nCSeq: {cseq} SUBSCRIBE\nContact: <sip:[field0]@[local_ip]:[local_port]>\n{auth}Event: message-summary\nAccept: application/simple-message-summary\nExpires: 3600\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n"
        )
    };
    let mut x =
        String::from("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"mwi\">\n");
    x += &subscribe(1, "");
    x += "<recv response=\"407\" auth=\"true\"/>\n";
    x += &subscribe(2, "[field1]\n");
    x += "<recv response=\"200\"/>\n";
    for (i, c) in counts.iter().enumerate() {
        x += &format!(
            "<recv request=\"NOTIFY\" timeout=\"40000\"><action><ereg regexp=\"Voice-Message: {c}\" search_in=\"body\" check_it=\"true\" assign_to=\"n{i}\"/><exec command=\"touch lamp-{i}\"/></action></recv>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nX-Seen: [$n{i}]\nContent-Length: 0\n\n]]></send>\n"
        );
    }
    x += "</scenario>\n";
    x
}

/// SIPp's count of successful calls (or registrations) from its final screen.
pub fn successes(stdout: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .filter(|l| l.contains("Successful call"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}
