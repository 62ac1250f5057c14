//! What `brokerctl dev` prints at start: the stack's addresses and ready-to-paste commands for every example caller,
//! the partner, the caller claims in their tokens, and the sample resource server, including the certificate-bound
//! token demo. Every command is meant to work when pasted in the directory the stack was started from (a test runs
//! them all with `sh` and curl).

use std::path::PathBuf;

use super::state::DevUpstream;
use super::upstream::{UpstreamTarget, CLAIM_PREFIX};
use super::{DevStack, CLIENTS};

/// A shell function that prints a token's payload (the claims a resource server reads), pasted once before it is used.
/// The payload is base64url without padding; Python's decoder takes the excess padding added here.
const TOKEN_CLAIMS_FN: &str = "token_claims() { python3 -c 'import base64,json,sys; p=sys.argv[1].split(\".\")[1]; \
     print(json.dumps(json.loads(base64.urlsafe_b64decode(p+\"==\")),indent=2))' \"$1\"; }";

/// The `sed` that takes `access_token` out of a token answer.
const ACCESS_TOKEN_SED: &str = "sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/'";

impl DevStack {
    /// Ready-to-paste curl commands for every example caller, the partner and the resource server.
    pub fn curl_commands(&self) -> String {
        let p = &self.state.paths;
        let rel = |path: PathBuf| -> String { path.display().to_string() };
        let ca = rel(p.ca_cert());
        let cert = |name: &str| format!("--cert {} --key {}", rel(p.client_cert(name)), rel(p.client_key(name)));
        let mut out = String::new();
        let token_endpoint = match &self.upstream {
            UpstreamTarget::Standin { api_url, .. } => {
                format!("{} (Cognito stand-in; GetClientToken at {api_url})", self.token_url)
            }
            UpstreamTarget::Real { .. } => self.token_url.clone(),
        };
        out.push_str(&format!(
            "token-broker local stack (NOT FOR PRODUCTION)\n  mTLS domain:     {}\n  partner domain:  {}\n  \
             resource server: {} (mTLS: {})\n  token endpoint:  {token_endpoint}\n",
            self.mtls_url(),
            self.partner_url(),
            self.resource_url(),
            self.resource_mtls_url(),
        ));
        let standin = matches!(self.upstream, UpstreamTarget::Standin { .. });
        if standin {
            out.push_str(&format!(
                "  token claims:    {CLAIM_PREFIX}callerId, {CLAIM_PREFIX}authMethod, {CLAIM_PREFIX}credentialFingerprint, \
                 {CLAIM_PREFIX}policyVersion, and cnf for a certificate-bound caller (the project's \
                 pre-token-generation trigger, run by the stand-in)\n"
            ));
        }
        out.push_str(&format!("  state:           {}\n\n", p.dir.display()));

        for c in CLIENTS {
            let scope = match c.name {
                "order-processing" => " --data-urlencode 'scope=customer-api/read customer-api/admin'",
                _ => "",
            };
            let mut describe = c.describe.to_owned();
            if let Some(caller) = c.caller.and_then(|id| self.caller(id)) {
                if caller.bind_token_to_certificate {
                    describe.push_str("; its tokens are bound to its certificate");
                }
                if self.upstream.mode_of(&caller.cognito_client) == DevUpstream::GetClientToken {
                    describe.push_str("; its app client gets tokens from Cognito's GetClientToken API");
                }
            }
            out.push_str(&format!(
                "# {} ({describe})\ncurl -s --cacert {ca} {} -d grant_type=client_credentials{scope} {}/oauth2/token\n\n",
                c.name,
                cert(c.name),
                self.mtls_url()
            ));
        }
        let partner_request = format!(
            "curl -s --cacert {ca} -H \"Authorization: Bearer $(cat {})\" -d grant_type=client_credentials {}/oauth2/token",
            rel(p.partner_jwt()),
            self.partner_url()
        );
        out.push_str(&format!(
            "# partner-acme (partner JWT, no client certificate; token valid 5 minutes, new one: brokerctl dev token)\n\
             {partner_request}\n\n"
        ));

        if !standin {
            out.push_str(
                "# with --token-url no trigger runs here: the tokens carry no caller claims unless the real pool adds \
                 them, and the sample resource server, which knows only the stand-in's keys, refuses them\n",
            );
            return out;
        }

        out.push_str(&format!(
            "# what a token says about its caller: token_claims TOKEN prints its payload (python3)\n{TOKEN_CLAIMS_FN}\n\n"
        ));
        out.push_str(&format!(
            "# use a token on the sample resource server (GET needs customer-api/read, DELETE customer-api/admin)\n\
             TOKEN=$(curl -s --cacert {ca} {} -d grant_type=client_credentials {}/oauth2/token | {ACCESS_TOKEN_SED})\n\
             token_claims \"$TOKEN\"\n\
             curl -s --cacert {ca} -H \"Authorization: Bearer $TOKEN\" {}/customers\n\
             curl -s --cacert {ca} -X DELETE -H \"Authorization: Bearer $TOKEN\" {}/customers/123\n\n",
            cert("reporting"),
            self.mtls_url(),
            self.resource_url(),
            self.resource_url(),
        ));

        let bound = CLIENTS
            .iter()
            .find(|c| c.caller.and_then(|id| self.caller(id)).is_some_and(|k| k.bind_token_to_certificate));
        let other = bound.and_then(|b| CLIENTS.iter().find(|c| c.caller.is_some() && c.name != b.name));
        if let (Some(bound), Some(other)) = (bound, other) {
            let rs_mtls = self.resource_mtls_url();
            out.push_str(&format!(
                "# a certificate-bound token ({b}): served on the mTLS listener only to the certificate it was issued for\n\
                 BOUND=$(curl -s --cacert {ca} {} -d grant_type=client_credentials --data-urlencode 'scope=customer-api/read customer-api/admin' {}/oauth2/token | {ACCESS_TOKEN_SED})\n\
                 token_claims \"$BOUND\"\n\
                 curl -s --cacert {ca} {} -X DELETE -H \"Authorization: Bearer $BOUND\" {rs_mtls}/customers/123\n\
                 # the same token with another certificate ({o}), and without one: 401 invalid_token\n\
                 curl -s --cacert {ca} {} -X DELETE -H \"Authorization: Bearer $BOUND\" {rs_mtls}/customers/123\n\
                 curl -s --cacert {ca} -X DELETE -H \"Authorization: Bearer $BOUND\" {}/customers/123\n\n",
                cert(bound.name),
                self.mtls_url(),
                cert(bound.name),
                cert(other.name),
                self.resource_url(),
                b = bound.name,
                o = other.name,
            ));
        }
        out.push_str(&format!(
            "# a partner's token names the partner ({CLAIM_PREFIX}authMethod jwt) and is never bound\n\
             token_claims \"$({partner_request} | {ACCESS_TOKEN_SED})\"\n"
        ));
        out
    }
}
