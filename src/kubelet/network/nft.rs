//! The node's nftables table `kone`: masquerade for pod traffic leaving the
//! cluster CIDR, and forwarding to and from the bridge, written over
//! nf_tables netlink as one batch.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, Immediate,
    InetHookNumber, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute,
    RuleMessage, TableAttribute, TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub const TABLE: &str = "kone";

const NF_ACCEPT: u32 = 1;
/// `priority srcnat` and `priority filter` in nft's words.
const PRIORITY_SRCNAT: i32 = 100;
const PRIORITY_FILTER: i32 = 0;
/// NFT_PAYLOAD_NETWORK_HEADER, and where IPv4 keeps its addresses.
const NETWORK_HEADER: u32 = 1;
const IPV4_SADDR: u32 = 12;
const IPV4_DADDR: u32 = 16;
const IFNAMSIZ: usize = 16;

/// The table's messages: created empty (so the delete is valid on a node
/// without it), deleted, and built again. The kernel applies the batch as
/// one transaction, so packets never see a half-written table.
fn table_batch(bridge: &str, pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> Vec<NfTablesMessage> {
    let table = || TableMessage {
        attributes: vec![TableAttribute::Name(TABLE.into())],
    };
    let masquerade = [
        cidr_match(IPV4_SADDR, pod_cidr, Operator::Equal),
        cidr_match(IPV4_DADDR, cluster_cidr, Operator::NotEqual),
        vec![Expressions::Other {
            expression_type: "masq".into(),
            attributes: vec![],
        }],
    ]
    .concat();
    vec![
        NfTablesMessage::NewTable(table()),
        NfTablesMessage::DeleteTable(table()),
        NfTablesMessage::NewTable(table()),
        base_chain(
            "postrouting",
            "nat",
            InetHookNumber::PostRouting,
            PRIORITY_SRCNAT,
        ),
        rule("postrouting", masquerade),
        base_chain(
            "forward",
            "filter",
            InetHookNumber::Forward,
            PRIORITY_FILTER,
        ),
        rule("forward", accept_interface(MetaKey::Iifname, bridge)),
        rule("forward", accept_interface(MetaKey::Oifname, bridge)),
    ]
}

fn base_chain(name: &str, kind: &str, hook: InetHookNumber, priority: i32) -> NfTablesMessage {
    NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(TABLE.into()),
            ChainAttribute::Name(name.into()),
            ChainAttribute::Type(kind.into()),
            ChainAttribute::Hook(vec![
                Hook::Number(hook.into()),
                // The kernel reads the priority as a signed 32-bit number.
                Hook::Priority(priority as u32),
            ]),
            ChainAttribute::Policy(NF_ACCEPT),
        ],
    })
}

fn rule(chain: &str, expressions: Vec<Expressions>) -> NfTablesMessage {
    NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(TABLE.into()),
            RuleAttribute::Chain(chain.into()),
            RuleAttribute::Expressions(expressions.into_iter().map(Into::into).collect()),
        ],
    })
}

/// `ip saddr CIDR` (or daddr, or `!=`): load the address, mask it, compare.
fn cidr_match(offset: u32, cidr: Ipv4Net, op: Operator) -> Vec<Expressions> {
    vec![
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(4),
        ]),
        Expressions::Bitwise(vec![
            Bitwise::SourceRegister(Register::Reg1),
            Bitwise::DestinationRegister(Register::Reg1),
            Bitwise::Length(4),
            Bitwise::Mask(DataAttribute::Value(cidr.netmask().octets().to_vec())),
            Bitwise::Xor(DataAttribute::Value(
                Ipv4Addr::UNSPECIFIED.octets().to_vec(),
            )),
        ]),
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(op),
            Cmp::Data(DataAttribute::Value(cidr.network().octets().to_vec())),
        ]),
    ]
}

/// `iifname NAME accept` (or oifname): names compare as IFNAMSIZ NUL-padded bytes.
fn accept_interface(key: MetaKey, name: &str) -> Vec<Expressions> {
    let mut padded = name.as_bytes().to_vec();
    padded.resize(IFNAMSIZ, 0);
    vec![
        Expressions::Meta(vec![
            Meta::Key(key),
            Meta::DestinationRegister(Register::Reg1),
        ]),
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(padded)),
        ]),
        Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                Verdict::Other(NF_ACCEPT),
            )])),
        ]),
    ]
}

/// Replaces the table in the calling thread's network namespace (the socket
/// belongs to it), so call it from a thread inside the node's namespace.
pub fn apply(bridge: &str, pod_cidr: Ipv4Net, cluster_cidr: Ipv4Net) -> Result<()> {
    let ipv4 = NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0);
    let subsys = NetfilterHeader::new(
        NetfilterProtoFamily::Unspec,
        0,
        libc::NFNL_SUBSYS_NFTABLES as u16,
    );
    let mut messages = vec![NetlinkMessage::from(NetfilterMessage::new(
        subsys.clone(),
        ControlMessage::BatchBegin,
    ))];
    for inner in table_batch(bridge, pod_cidr, cluster_cidr) {
        let mut message = NetlinkMessage::from(NetfilterMessage::new(ipv4.clone(), inner));
        message.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        messages.push(message);
    }
    messages.push(NetlinkMessage::from(NetfilterMessage::new(
        subsys,
        ControlMessage::BatchEnd,
    )));
    let mut batch = Vec::new();
    for (seq, message) in messages.iter_mut().enumerate() {
        message.header.flags |= NLM_F_REQUEST;
        message.header.sequence_number = seq as u32 + 1;
        message.finalize();
        let start = batch.len();
        batch.resize(start + message.buffer_len(), 0);
        message.serialize(&mut batch[start..]);
    }
    // Only the table's messages are acknowledged, not the batch markers.
    let mut pending = messages.len() - 2;

    let socket = Socket::new(NETLINK_NETFILTER).context("opening nf_tables netlink")?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .context("connecting nf_tables netlink")?;
    socket
        .send(&batch, 0)
        .context("sending the nftables batch")?;
    while pending > 0 {
        let (reply, _) = socket
            .recv_from_full()
            .context("reading nf_tables replies")?;
        let mut offset = 0;
        while offset < reply.len() {
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(&reply[offset..])
                .context("parsing an nf_tables reply")?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    bail!("nf_tables rejected table {TABLE}: {}", e.to_io())
                }
                NetlinkPayload::Error(_) => pending -= 1,
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
    Ok(())
}
