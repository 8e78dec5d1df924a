//! Timeouts and timeout certificates.
//!
//! A timeout for round r signs `(r, round of the signer's highest QC)` and carries that QC so
//! receivers can check the claim. A TC is a quorum of timeouts for one round; it carries the
//! highest of their QCs, whose round must equal the largest signed QC round.

use super::codec::{Codec, DecodeError, MAX_LIST_LEN, Reader, Writer};
use super::{QuorumCert, Round, Signature, ValidatorIndex, domain};

/// A signed timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// The round that timed out.
    pub round: Round,
    /// The signer's highest QC (its round is signed).
    pub high_qc: QuorumCert,
    /// The signer's highest TC, unsigned: it lets a lagging receiver catch up (self-certifying).
    pub high_tc: Option<TimeoutCert>,
    /// The signer.
    pub signer: ValidatorIndex,
    /// Signature over [`Timeout::signing_bytes`].
    pub signature: Signature,
}

impl Timeout {
    /// Bytes a timeout (and each signature in a TC) signs.
    pub fn signing_bytes(chain_id: u64, round: Round, high_qc_round: Round) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(domain::TIMEOUT);
        w.u64(chain_id);
        w.u64(round);
        w.u64(high_qc_round);
        w.finish()
    }
}

impl Codec for Timeout {
    const NAME: &'static str = "timeout";
    fn write(&self, w: &mut Writer) {
        w.u64(self.round);
        self.high_qc.write(w);
        w.option(self.high_tc.as_ref(), |w, tc| tc.write(w));
        w.u16(self.signer);
        self.signature.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            round: r.u64(Self::NAME)?,
            high_qc: QuorumCert::read(r)?,
            high_tc: r.option(Self::NAME, TimeoutCert::read)?,
            signer: r.u16(Self::NAME)?,
            signature: Signature::read(r)?,
        })
    }
}

/// A timeout certificate. `signatures` holds `(signer, signed high-QC round, signature)` sorted
/// by strictly increasing signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutCert {
    /// The round that timed out.
    pub round: Round,
    /// The highest QC among the timeouts.
    pub high_qc: QuorumCert,
    /// The timeouts' signers, signed QC rounds and signatures.
    pub signatures: Vec<(ValidatorIndex, Round, Signature)>,
}

impl TimeoutCert {
    /// The largest QC round signed by a member timeout.
    pub fn max_signed_qc_round(&self) -> Round {
        self.signatures.iter().map(|(_, r, _)| *r).max().unwrap_or(0)
    }
}

impl Codec for TimeoutCert {
    const NAME: &'static str = "timeout certificate";
    fn write(&self, w: &mut Writer) {
        w.u64(self.round);
        self.high_qc.write(w);
        w.len(self.signatures.len());
        for (index, qc_round, sig) in &self.signatures {
            w.u16(*index);
            w.u64(*qc_round);
            sig.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let round = r.u64(Self::NAME)?;
        let high_qc = QuorumCert::read(r)?;
        let len = r.len(MAX_LIST_LEN, Self::NAME)?;
        let mut signatures = Vec::with_capacity(len.min(128));
        for _ in 0..len {
            signatures.push((r.u16(Self::NAME)?, r.u64(Self::NAME)?, Signature::read(r)?));
        }
        Ok(Self { round, high_qc, signatures })
    }
}
