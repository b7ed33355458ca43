//! Cluster identity: CAs, certificates, kubeconfig, tokens. (Being written.)
