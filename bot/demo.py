"""``selfcare demo seed``: realistic Thai demo customers, numbers and 12 months of bills.

Idempotent: customers are keyed by account number, bills by reference and the demo
user by its user id, so running it again adds only what is missing (for example the
bill of a month that has ended since the last run).
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from core.domain import Bill, Customer, EServiceUser, ServiceAccount, ServiceKind, new_id
from core.ports import PasswordHasher, UnitOfWorkFactory

BANGKOK = ZoneInfo("Asia/Bangkok")
DEMO_USER_ID = "demo"
DEMO_PASSWORD = "demo-1234"  # noqa: S105 - the documented demo credential, not a secret

# (title, given name, romanised given name)
_GIVEN = [
    ("นาย", "สมชาย", "somchai"), ("นาง", "สมศรี", "somsri"), ("นาย", "วิชัย", "wichai"),
    ("นางสาว", "มาลี", "malee"), ("นาย", "ประเสริฐ", "prasert"), ("นาง", "กาญจนา", "kanjana"),
    ("นาย", "สุรเชษฐ์", "surachet"), ("นางสาว", "พรทิพย์", "pornthip"), ("นาย", "อนุชา", "anucha"),
    ("นางสาว", "นภัสสร", "napatsorn"), ("นาย", "ธนากร", "thanakorn"), ("นาง", "ศิริพร", "siriporn"),
    ("นาย", "ชัยวัฒน์", "chaiwat"), ("นางสาว", "วราภรณ์", "waraporn"), ("นาย", "ปิยะ", "piya"),
    ("นาง", "รัตนา", "rattana"), ("นาย", "ณัฐพล", "nattapon"), ("นางสาว", "อรอุมา", "onuma"),
    ("นาย", "กิตติศักดิ์", "kittisak"), ("นาง", "จันทร์เพ็ญ", "chanpen"), ("นาย", "ธีรวัฒน์", "teerawat"),
    ("นางสาว", "สุนิสา", "sunisa"),
]  # fmt: skip
_FAMILY = [
    "ใจดี", "รักไทย", "ศรีสุข", "แก้วมณี", "บุญมา", "ทองคำ", "วงศ์สวัสดิ์", "สุขสวัสดิ์",
    "พึ่งบุญ", "จันทร์หอม", "มั่นคง", "เพชรรัตน์", "ศรีวงศ์", "บุญเรือง", "แสงทอง", "อินทร์แก้ว",
    "ชัยมงคล", "สายสุวรรณ", "ธนสาร", "พรหมมา", "ปัญญาดี", "เรืองศรี",
]  # fmt: skip
# (street part, sub-district, district, province, postal code) — real combinations
_PLACES = [
    ("ถนนพหลโยธิน", "แขวงลาดยาว", "เขตจตุจักร", "กรุงเทพมหานคร", "10900"),
    ("ถนนสีลม", "แขวงสีลม", "เขตบางรัก", "กรุงเทพมหานคร", "10500"),
    ("ซอยสุขุมวิท 63", "แขวงคลองตันเหนือ", "เขตวัฒนา", "กรุงเทพมหานคร", "10110"),
    ("ซอยสุขุมวิท 95", "แขวงบางจาก", "เขตพระโขนง", "กรุงเทพมหานคร", "10260"),
    ("ถนนห้วยแก้ว", "ตำบลสุเทพ", "อำเภอเมืองเชียงใหม่", "จังหวัดเชียงใหม่", "50200"),
    ("ถนนมิตรภาพ", "ตำบลในเมือง", "อำเภอเมืองขอนแก่น", "จังหวัดขอนแก่น", "40000"),
    ("ถนนเพชรเกษม", "ตำบลหาดใหญ่", "อำเภอหาดใหญ่", "จังหวัดสงขลา", "90110"),
    ("ถนนแจ้งวัฒนะ", "ตำบลบางพูด", "อำเภอปากเกร็ด", "จังหวัดนนทบุรี", "11120"),
    ("ถนนจอมสุรางค์ยาตร์", "ตำบลในเมือง", "อำเภอเมืองนครราชสีมา", "จังหวัดนครราชสีมา", "30000"),
    ("ถนนถลาง", "ตำบลตลาดใหญ่", "อำเภอเมืองภูเก็ต", "จังหวัดภูเก็ต", "83000"),
    ("ถนนบางแสนสาย 2", "ตำบลแสนสุข", "อำเภอเมืองชลบุรี", "จังหวัดชลบุรี", "20130"),
    ("ถนนสุขุมวิท", "ตำบลบางเมือง", "อำเภอเมืองสมุทรปราการ", "จังหวัดสมุทรปราการ", "10270"),
]
# (kind, plan name, monthly fee in satang)
_PLANS = [
    (ServiceKind.MOBILE, "เน็ตไม่อั้น 599", 59_900),
    (ServiceKind.MOBILE, "โทรคุ้ม 299", 29_900),
    (ServiceKind.FIXED, "โทรศัพท์บ้าน 100", 10_000),
    (ServiceKind.INTERNET, "ไฟเบอร์ 1Gbps 799", 79_900),
]


@dataclass(frozen=True)
class SeedReport:
    customers: int
    service_accounts: int
    bills: int
    users: int


def _national_id(rng: random.Random) -> str:
    digits = [rng.randint(1, 8)] + [rng.randint(0, 9) for _ in range(11)]
    check = (11 - sum(d * (13 - i) for i, d in enumerate(digits)) % 11) % 10
    return "".join(map(str, digits)) + str(check)


def _month_start(d: date, back: int) -> date:
    month_index = d.year * 12 + d.month - 1 - back
    return date(month_index // 12, month_index % 12 + 1, 1)


def demo_customers(count: int = 22) -> list[tuple[Customer, list[ServiceAccount]]]:
    """The demo customers, the same on every run (ids aside)."""
    rng = random.Random(2569)  # noqa: S311 - demo data, not security
    result = []
    for i in range(count):
        title, given, roman = _GIVEN[i % len(_GIVEN)]
        family = _FAMILY[(i * 7) % len(_FAMILY)]
        street, sub, district, province, postcode = _PLACES[i % len(_PLACES)]
        house = f"{rng.randint(1, 299)}/{rng.randint(1, 99)}"
        customer = Customer(
            id=new_id(),
            account_no=f"{1_000_000_001 + i}",
            name=f"{title}{given} {family}",
            address=f"{house} {street} {sub} {district} {province} {postcode}",
            phone=f"0{rng.choice('689')}{rng.randint(10_000_000, 99_999_999)}",
            email=f"{roman}.{i + 1}@example.co.th",
            national_id=_national_id(rng),
            language="th" if i % 5 else "en" if i else "th",
        )
        accounts = [
            ServiceAccount(
                id=new_id(),
                customer_id=customer.id,
                number=customer.phone,
                kind=ServiceKind.MOBILE,
                plan=_PLANS[i % 2][1],
            )
        ]
        for extra in range(i % 3):  # some customers have a home line and fibre too
            kind, plan, _ = _PLANS[2 + extra]
            accounts.append(
                ServiceAccount(
                    id=new_id(),
                    customer_id=customer.id,
                    number=f"02{rng.randint(1_000_000, 9_999_999)}",
                    kind=kind,
                    plan=plan,
                )
            )
        result.append((customer, accounts))
    return result


def _bills_for(
    customer_index: int, account: ServiceAccount, account_no: str, today: date
) -> list[Bill]:
    """Twelve monthly bills ending with the last complete month. The newest is unpaid
    (due in the future); customer #3 also leaves last month's unpaid (overdue); customer
    #4 has paid part of the newest."""
    fee = next(f for _, plan, f in _PLANS if plan == account.plan)
    # A customer has at most one number of each kind: the kind keeps references stable.
    account_index = list(ServiceKind).index(account.kind) + 1
    rng = random.Random(f"{account_no}-{account_index}")  # noqa: S311 - demo data
    bills = []
    for back in range(12, 0, -1):
        start = _month_start(today, back)
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
        issued = end + timedelta(days=1)
        usage = rng.randint(0, 25_000) if account.kind is ServiceKind.MOBILE else 0
        amount = round((fee + usage) * 1.07)
        newest = back == 1
        paid = amount
        if newest:
            paid = amount // 2 if customer_index == 3 else 0
        elif back == 2 and customer_index == 2:
            paid = 0
        bills.append(
            Bill(
                id=new_id(),
                customer_id=account.customer_id,
                service_account_id=account.id,
                reference=f"B{account_no}{start:%y%m}{account_index}",
                period_start=start,
                period_end=end,
                issued_on=issued,
                due_on=issued + timedelta(days=30),
                amount_satang=amount,
                paid_satang=paid,
            )
        )
    return bills


async def seed(uow_factory: UnitOfWorkFactory, hasher: PasswordHasher, today: date) -> SeedReport:
    """Add whatever of the demo data is missing, in one transaction."""
    customers = accounts_added = bills_added = users = 0
    password_hash = await hasher.hash(DEMO_PASSWORD)
    async with uow_factory() as uow:
        for index, (customer, accounts) in enumerate(demo_customers()):
            stored = await uow.customers.get_by_account_no(customer.account_no)
            if stored is None:
                await uow.customers.add(customer)
                for account in accounts:
                    await uow.customers.add_service_account(account)
                customers += 1
                accounts_added += len(accounts)
                stored, stored_accounts = customer, accounts
            else:
                stored_accounts = await uow.customers.service_accounts(stored.id)
            for account in stored_accounts:
                for bill in _bills_for(index, account, stored.account_no, today):
                    if await uow.bills.get_by_reference(bill.reference) is None:
                        await uow.bills.add(bill)
                        bills_added += 1
            if index == 0 and await uow.users.get_by_user_id(DEMO_USER_ID) is None:
                await uow.users.add(
                    EServiceUser(
                        id=new_id(),
                        user_id=DEMO_USER_ID,
                        customer_id=stored.id,
                        password_hash=password_hash,
                    )
                )
                users += 1
        await uow.commit()
    return SeedReport(customers, accounts_added, bills_added, users)
