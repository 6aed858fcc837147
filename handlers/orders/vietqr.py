"""VietQR: the NAPAS bank-transfer QR code (EMVCo merchant-presented mode), built locally.

The payload is a string of TLV fields (2-digit id, 2-digit length, value):

    00 "01"                      payload format indicator
    01 "12"                      point of initiation: dynamic (an amount is given)
    38 merchant account information (NAPAS):
         00 "A000000727"         NAPAS globally unique identifier
         01 beneficiary:  00 bank BIN (6 digits, the acquirer), 01 account number
         02 "QRIBFTTA"           service: inter-bank fund transfer 24/7 to an account
    53 "704"                     currency: Vietnamese đồng (ISO 4217)
    54 amount                    whole đồng
    58 "VN"                      country
    62 additional data:  08 purpose of transaction = the transfer note
    63 CRC                       CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over
                                 everything before it including "6304", 4 upper-case hex digits

The transfer note is the order code without its dash ("VAV7K3Q9"): banks drop punctuation
from transfer notes, and nothing else (no name, no phone) goes into the code or the note.
The PNG is drawn with `segno`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import segno

NAPAS_GUID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
CURRENCY_VND = "704"
COUNTRY = "VN"
MAX_NOTE = 25  # characters of the purpose field banks show and keep

_BIN = re.compile(r"[0-9]{6}")
_ACCOUNT = re.compile(r"[0-9A-Za-z]{1,19}")
_NOTE = re.compile(r"[0-9A-Za-z ]{1,25}")


class VietQRError(ValueError):
    """The payment settings or the amount cannot make a valid VietQR."""


def tlv(tag: str, value: str) -> str:
    if len(value) > 99:
        raise VietQRError(f"field {tag} longer than 99 characters")
    return f"{tag}{len(value):02d}{value}"


def crc16_ccitt(data: str) -> str:
    """CRC-16/CCITT-FALSE of the ASCII text, as 4 upper-case hex digits."""
    crc = 0xFFFF
    for byte in data.encode("ascii"):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return f"{crc:04X}"


def transfer_note(order_code: str) -> str:
    """The order code as banks keep it in a transfer note: letters and digits only."""
    return re.sub(r"[^0-9A-Za-z]", "", order_code).upper()


@dataclass(frozen=True)
class Transfer:
    bank_bin: str
    account_number: str
    amount_vnd: int
    note: str

    def payload(self) -> str:
        """The EMVCo/NAPAS string the QR code carries, CRC included."""
        if not _BIN.fullmatch(self.bank_bin):
            raise VietQRError("PAYMENT_BANK_BIN must be the 6-digit NAPAS bank BIN")
        if not _ACCOUNT.fullmatch(self.account_number):
            raise VietQRError("PAYMENT_ACCOUNT_NUMBER must be 1-19 letters or digits")
        if not 0 < self.amount_vnd < 10**13:
            raise VietQRError("amount out of range")
        if not _NOTE.fullmatch(self.note):
            raise VietQRError("transfer note must be 1-25 letters, digits or spaces")
        beneficiary = tlv("00", self.bank_bin) + tlv("01", self.account_number)
        merchant = tlv("00", NAPAS_GUID) + tlv("01", beneficiary) + tlv("02", SERVICE_TO_ACCOUNT)
        body = (
            tlv("00", "01")
            + tlv("01", "12")
            + tlv("38", merchant)
            + tlv("53", CURRENCY_VND)
            + tlv("54", str(self.amount_vnd))
            + tlv("58", COUNTRY)
            + tlv("62", tlv("08", self.note))
            + "6304"
        )
        return body + crc16_ccitt(body)

    def png(self, scale: int = 8) -> bytes:
        """The QR code as a PNG image (error correction M, the usual quiet zone)."""
        code = segno.make(self.payload(), error="m", micro=False)
        out = io.BytesIO()
        code.save(out, kind="png", scale=scale, border=4)
        return out.getvalue()


def parse_tlv(data: str) -> dict[str, str]:
    """Split TLV text into {tag: value} (for reading a payload back, e.g. in tests)."""
    fields: dict[str, str] = {}
    index = 0
    while index < len(data):
        tag, length = data[index : index + 2], data[index + 2 : index + 4]
        if len(tag) < 2 or not length.isdigit():
            raise VietQRError("malformed TLV")
        value = data[index + 4 : index + 4 + int(length)]
        if len(value) != int(length):
            raise VietQRError("truncated TLV")
        fields[tag] = value
        index += 4 + int(length)
    return fields
