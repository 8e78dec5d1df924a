//! The benchmark ERC-20 (`contracts/bench/BenchToken.sol`): creation code and calldata.

use alloy_primitives::{Address, Bytes, U256, hex};

use super::LoadgenError;

/// Creation bytecode of `BenchToken` (solc 0.8.28, optimizer 200 runs, EVM cancun; rebuilt with
/// `contracts/bench/compile.js`).
pub const BENCH_TOKEN_BIN: &str = include_str!("../../../contracts/bench/BenchToken.bin");

/// Gas limit of one token transfer between two holders (it uses about 35,000).
pub const TRANSFER_GAS: u64 = 65_000;

/// Gas limit of the deployment.
pub const DEPLOY_GAS: u64 = 1_500_000;

/// `transfer(address,uint256)`.
const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// `balanceOf(address)`.
const BALANCE_OF_SELECTOR: [u8; 4] = [0x70, 0xa0, 0x82, 0x31];

/// Init code deploying a token whose whole `supply` goes to the deployer.
pub fn creation_code(supply: U256) -> Result<Bytes, LoadgenError> {
    let mut code = hex::decode(BENCH_TOKEN_BIN.trim())
        .map_err(|e| LoadgenError::Setup(format!("BenchToken.bin is not hex: {e}")))?;
    code.extend_from_slice(&supply.to_be_bytes::<32>());
    Ok(code.into())
}

fn word(address: Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(address.as_slice());
    w
}

/// Calldata of `transfer(to, amount)`.
pub fn transfer_calldata(to: Address, amount: U256) -> Bytes {
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&TRANSFER_SELECTOR);
    data.extend_from_slice(&word(to));
    data.extend_from_slice(&amount.to_be_bytes::<32>());
    data.into()
}

/// Calldata of `balanceOf(owner)`.
pub fn balance_of_calldata(owner: Address) -> Bytes {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&BALANCE_OF_SELECTOR);
    data.extend_from_slice(&word(owner));
    data.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use alloy_primitives::keccak256;

    use super::*;

    #[test]
    fn selectors_match_the_signatures() {
        assert_eq!(keccak256("transfer(address,uint256)")[..4], TRANSFER_SELECTOR);
        assert_eq!(keccak256("balanceOf(address)")[..4], BALANCE_OF_SELECTOR);
    }

    #[test]
    fn calldata_is_abi_encoded() {
        let to = Address::repeat_byte(0x11);
        let data = transfer_calldata(to, U256::from(5));
        assert_eq!(data.len(), 68);
        assert_eq!(&data[16..36], to.as_slice());
        assert_eq!(data[67], 5);
        assert_eq!(balance_of_calldata(to).len(), 36);
    }

    #[test]
    fn creation_code_ends_with_the_supply() {
        let code = creation_code(U256::from(1000)).unwrap();
        assert!(code.len() > 1000);
        assert_eq!(&code[..2], &[0x60, 0x80], "solc's free memory pointer prologue");
        assert_eq!(U256::from_be_slice(&code[code.len() - 32..]), U256::from(1000));
    }
}
