"""Text helpers for matching what customers type (often without diacritics)."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Lower-case, strip Vietnamese diacritics (đ → d), collapse spaces: for matching only."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SPACES.sub(" ", stripped).strip()


# ---- language of a message -----------------------------------------------------------------

# Letters-only tokens: "VAV-AM24Z" or "0912abc" are codes, not words ("am", "is" inside a code
# would otherwise count as English).
_WORDS = re.compile(r"(?<![\w])[^\W\d_]+(?![\w])")


# Vietnamese words as typed without diacritics (and chat spellings) that are not English
# words: "toi", "khong", "ko", "cua"... Folded forms that are also English ("the" = thế,
# "to" = tô, "do" = đó, "can" = cần, "an" = ăn, "no" = nó, "so" = số) are in neither list.
def word_set(block: str) -> frozenset[str]:
    """The words of a block of text, as a set (for word lists written as prose)."""
    return frozenset(block.split())


_VI_WORDS = word_set(
    """
    toi tui minh mik mk mjnh em e anh chi ban ad shop oi ak nhe nha nhi vay zay dzay
    khong ko khg hok hk kh k0 hong hem khum chua roi nua luon het lai qua wa ma la thi
    cua cho voi vs va hay hoac nhung nhieu bao gio lau nao gi j sao dau o ve vao ra len
    xuong duoc dc dk muon mua dat tranh buc khung thuy gia tien don giao nhan gui goi lien
    dien thoai sdt dt thong tin tt dia xem xoa huy sua doi tra hanh loi vo gay rach nut
    xuoc biet bik bjk hoi xin chao cam tks vang da dung sai nguoi khi neu vi tai de se dang
    cung cx deu phai lam giup gium dum thoi nay kia ay hu ui ngay hom toan bo moi cu
    khach khau khoan vien tu ntn bn sp nv ib hnay trc ng
    """
)
_ENGLISH_WORDS = word_set(
    """
    i you your yours my mine me we our us they their it its is are was were been am
    and or not of for with from about into at by if then than this that these those
    there here what how where when why who whom which whose would could should will shall
    must have has had does did done get got want wanted need like know knew tell told say
    please thank thanks hello hey yes yeah sorry okay
    order ordered buy bought painting paintings picture pictures frame art price prices cost
    pay paid payment card cash transfer bank fee free delete deleted remove removed erase
    data information personal details detail phone number address name names delivery
    deliver delivered shipping shipped return returns returned refund exchange warranty
    street road lane alley district ward city province building floor apartment
    broken damaged cracked arrived arrive someone somebody anyone anybody stranger called
    calls call texted message messages leak leaked leaking privacy policy account password
    login log out in live contact open opening hours time today tomorrow week days keep
    kept store stored share shared sell sold used use see show change changed update fix
    wrong help staff human person agent talk speak complain complaint problem issue
    very really still again after before just also any all some much many more most other
    else good great nice bad morning evening night lot lots wife husband friend received
    receive send sent happens happened possible allowed safe secure private protect
    """
).difference(_VI_WORDS)


def _has_marks(word: str) -> bool:
    return fold(word) != word.lower()


def detect_language(text: str) -> str | None:
    """ "en", "vi", or None when a message does not say which language its writer uses.

    Vietnamese: words with Vietnamese diacritics, or Vietnamese words typed without them
    ("toi", "ko", "cua", "bao nhieu"). English: several English words and (almost) no
    Vietnamese. Unsure (None): names ("Nguyễn Thị Lan", "Tran Van An"), phone numbers,
    codes, "ok", a single "hello" or "thanks" — words anyone may type.

    Capitalised words with diacritics are read as names and places ("I live in Hà Nội")
    and only count when nothing else speaks.
    """
    words = _WORDS.findall(unicodedata.normalize("NFC", text))
    if not words:
        return None
    vi = en = 0.0
    for index, word in enumerate(words):
        folded = fold(word)
        if not folded:
            continue
        if _has_marks(word):
            capitalised = word[0].isupper() and not word.isupper()
            if capitalised and (index > 0 or folded not in _VI_WORDS):
                continue  # a name or a place; "Tôi" opening a sentence is a word
            vi += 1 if capitalised else 2
        elif folded in _VI_WORDS:
            if word[0].isupper() and index > 0:
                continue  # a name or a place typed bare: "Trang Thi street", "Le Van Minh"
            vi += 1
        elif folded in _ENGLISH_WORDS or (folded[-1] == "s" and folded[:-1] in _ENGLISH_WORDS):
            en += 1
    title_case = len(words) > 1 and all(w[0].isupper() and not w.isupper() for w in words)
    if title_case and en == 0:
        return None  # "Nguyen Van An", "Nguyễn Thị Minh": a name
    if en >= 2 and en >= 3 * vi:
        return "en"
    if vi >= 1 and vi > en:
        return "vi"
    return None
