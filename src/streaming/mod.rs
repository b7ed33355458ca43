//! The streaming protocols of pods/exec, pods/attach and pods/portforward,
//! server side, as the kubelet serves them: SPDY/3.1 upgrades with
//! `X-Stream-Protocol-Version` (v4.channel.k8s.io, portforward.k8s.io),
//! WebSocket channels (v5.channel.k8s.io and v4), and SPDY tunnelled in a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`).

pub mod channels;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod tunnel;
pub mod upgrade;
