"""The generated bilingual (English and Chinese) dialogue corpus the bundled tiny-chat model learns from.

Everything here is a pure function of the random seed: the same seed gives the same dialogues, in the
same order, on every machine. Replies are deliberately short and end on their own, because the model's
job is to exercise a serving stack (streaming, stop sequences, EOS, history), not to know things.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class Intent:
    prompts: tuple[str, ...]
    replies: tuple[str, ...]


def _intent(prompts: list[str], replies: list[str]) -> Intent:
    return Intent(tuple(prompts), tuple(replies))


FULLWIDTH = str.maketrans({",": "\uff0c", "!": "\uff01", "?": "\uff1f", ":": "\uff1a"})


def _zh_intent(prompts: list[str], replies: list[str]) -> Intent:
    """Chinese replies use full-width punctuation; users type either kind, so prompts get both."""
    typed = dict.fromkeys(p for prompt in prompts for p in (prompt, prompt.translate(FULLWIDTH)))
    return Intent(tuple(typed), tuple(reply.translate(FULLWIDTH) for reply in replies))


CHITCHAT_EN = [
    _intent(
        [
            "Hello",
            "Hello!",
            "hello",
            "Hi",
            "Hi!",
            "hi",
            "hi there",
            "Hey",
            "Hey!",
            "hey there",
            "Hello there!",
        ],
        ["Hello! How can I help you today?", "Hi! What can I do for you?", "Hello! Nice to meet you."],
    ),
    _intent(
        ["Good morning", "Good morning!", "morning!"],
        ["Good morning! How can I help you today?", "Good morning! I hope you have a great day."],
    ),
    _intent(["Good evening", "Good evening!"], ["Good evening! What can I do for you?"]),
    _intent(
        ["Good night", "Good night!", "night night"],
        ["Good night! Sleep well.", "Good night! See you tomorrow."],
    ),
    _intent(
        ["How are you?", "How are you doing?", "how are you", "How's it going?", "Are you ok?"],
        ["I'm doing well, thank you! How about you?", "I'm fine, thanks for asking. How can I help?"],
    ),
    _intent(
        ["I'm fine", "I am good, thanks", "I'm good", "Not bad"],
        ["Glad to hear that! What can I do for you?", "Great! How can I help you today?"],
    ),
    _intent(
        ["Who are you?", "What are you?", "who are you", "Introduce yourself", "Tell me about yourself"],
        ["I am Tiny Chat, a small language model served by llmserve.", "I'm Tiny Chat, a tiny assistant."],
    ),
    _intent(
        ["What is your name?", "What's your name?", "your name?", "Do you have a name?"],
        ["My name is Tiny Chat.", "I'm called Tiny Chat."],
    ),
    _intent(
        ["What can you do?", "How can you help me?", "What are you good at?", "Can you help me?"],
        [
            "I can answer simple questions and chat with you in English or Chinese.",
            "I can greet you, answer simple questions and chat a little.",
        ],
    ),
    _intent(
        ["Thank you", "Thank you!", "Thanks", "thanks!", "Thanks a lot", "thx"],
        ["You're welcome!", "You're welcome! Anything else?", "My pleasure!"],
    ),
    _intent(
        ["Bye", "Bye!", "Goodbye", "Goodbye!", "See you", "see you later"],
        ["Goodbye! Have a nice day.", "Bye! See you next time."],
    ),
    _intent(
        ["Are you a human?", "Are you a robot?", "Are you real?", "Are you an AI?"],
        ["I am an AI language model, not a human.", "I'm a small AI model, not a person."],
    ),
    _intent(
        ["Tell me a joke", "Tell me a joke.", "Say something funny", "Do you know a joke?"],
        [
            "Why did the computer go to the doctor? It had a virus!",
            "Why do programmers like dark mode? Because light attracts bugs.",
        ],
    ),
    _intent(
        ["What's the weather like?", "What is the weather today?", "Will it rain today?"],
        ["I can't check the weather, but I hope it is nice where you are."],
    ),
    _intent(
        ["What time is it?", "What day is it today?", "What's the date?"],
        ["I don't have a clock, so please check your device."],
    ),
    _intent(
        ["I love you", "I like you", "You are great", "You're smart"],
        ["Thank you, that is very kind!", "Thanks! You are nice too."],
    ),
    _intent(
        ["I'm sad", "I feel sad", "I am tired", "I'm bored"],
        ["I'm sorry to hear that. I hope you feel better soon.", "Maybe take a short break and a walk."],
    ),
    _intent(["Help", "help", "Help me", "I need help"], ["Sure, I'm here to help. What do you need?"]),
    _intent(
        ["Can you speak Chinese?", "Do you speak Chinese?"],
        ["Yes, I can speak a little Chinese. 你好!"],
    ),
    _intent(["Say hello", "Say hi"], ["Hello!", "Hi there!"]),
    _intent(["Count to five", "Count from one to five"], ["One, two, three, four, five."]),
    _intent(["Count to three"], ["One, two, three."]),
    _intent(
        ["Recommend a book", "What book should I read?"],
        ["You could read The Little Prince. It is short and lovely."],
    ),
    _intent(
        ["What is your favorite color?", "Do you have a favorite color?"],
        ["I like blue, the color of the sky."],
    ),
    _intent(["Who made you?", "Who created you?"], ["I was trained by a script in the llmserve project."]),
    _intent(
        ["Where are you from?", "Where do you live?"],
        ["I live inside a computer, in a small file of numbers."],
    ),
    _intent(["Yes", "yes", "OK", "ok", "Okay"], ["Great! What else can I do for you?", "Okay!"]),
    _intent(["No", "no", "Nope"], ["Alright. Let me know if you need anything."]),
]

CHITCHAT_ZH = [
    _zh_intent(
        ["你好", "你好!", "您好", "您好!", "嗨", "哈喽", "你好呀"],
        ["你好!有什么可以帮你的吗?", "你好!很高兴见到你。", "您好!请问有什么需要?"],
    ),
    _zh_intent(["早上好", "早上好!", "早安"], ["早上好!祝你今天愉快。", "早上好!有什么可以帮你的吗?"]),
    _zh_intent(["晚上好", "晚上好!"], ["晚上好!有什么可以帮你的吗?"]),
    _zh_intent(["晚安", "晚安!"], ["晚安!祝你好梦。"]),
    _zh_intent(
        ["你好吗?", "你好吗", "最近怎么样?", "你还好吗?"],
        ["我很好,谢谢!你呢?", "我很好,谢谢关心。有什么可以帮你的?"],
    ),
    _zh_intent(["我很好", "我挺好的", "还不错"], ["那太好了!有什么可以帮你的吗?"]),
    _zh_intent(
        ["你是谁?", "你是谁", "介绍一下你自己", "你是什么?"],
        ["我是 Tiny Chat,一个由 llmserve 提供服务的小型语言模型。", "我是 Tiny Chat,一个小助手。"],
    ),
    _zh_intent(
        ["你叫什么名字?", "你叫什么?", "你的名字是什么?"], ["我叫 Tiny Chat。", "我的名字是 Tiny Chat。"]
    ),
    _zh_intent(
        ["你能做什么?", "你会做什么?", "你能帮我吗?", "你有什么用?"],
        ["我可以用中文或英文回答简单的问题,也可以陪你聊天。"],
    ),
    _zh_intent(
        ["谢谢", "谢谢!", "谢谢你", "多谢", "感谢"], ["不客气!", "不客气!还有别的问题吗?", "很高兴能帮到你!"]
    ),
    _zh_intent(["再见", "再见!", "拜拜", "回头见"], ["再见!祝你有美好的一天。", "拜拜!下次见。"]),
    _zh_intent(["你是人吗?", "你是机器人吗?", "你是人工智能吗?"], ["我是一个人工智能语言模型,不是人。"]),
    _zh_intent(
        ["讲个笑话", "给我讲个笑话", "说个笑话吧"],
        ["为什么电脑去看医生?因为它中了病毒!", "程序员为什么喜欢黑色主题?因为光会吸引虫子。"],
    ),
    _zh_intent(["今天天气怎么样?", "今天会下雨吗?", "天气如何?"], ["我查不到天气,希望你那里天气很好。"]),
    _zh_intent(["现在几点了?", "今天星期几?", "今天几号?"], ["我没有时钟,请看一下你的设备。"]),
    _zh_intent(["我爱你", "我喜欢你", "你真棒", "你很聪明"], ["谢谢你,你真好!"]),
    _zh_intent(["我很难过", "我不开心", "我好累", "我好无聊"], ["听到这个我很难过,希望你快点好起来。"]),
    _zh_intent(["帮帮我", "我需要帮助", "救命"], ["好的,我在这里。你需要什么帮助?"]),
    _zh_intent(["你会说英语吗?", "你会英文吗?"], ["会的,我也会说英语。Hello!"]),
    _zh_intent(["从一数到五", "数到五"], ["一、二、三、四、五。"]),
    _zh_intent(["推荐一本书", "我应该读什么书?"], ["你可以读《小王子》,它很短也很美。"]),
    _zh_intent(["你最喜欢什么颜色?"], ["我喜欢蓝色,像天空一样。"]),
    _zh_intent(["谁创造了你?", "谁做了你?"], ["我是由 llmserve 项目里的一个脚本训练出来的。"]),
    _zh_intent(["好的", "好", "嗯", "行"], ["好的!还有什么可以帮你的吗?"]),
    _zh_intent(["不用了", "没有了", "不要"], ["好的,有需要随时找我。"]),
]

# (English country, English capital, Chinese country, Chinese capital)
CAPITALS = [
    ("France", "Paris", "法国", "巴黎"),
    ("China", "Beijing", "中国", "北京"),
    ("Japan", "Tokyo", "日本", "东京"),
    ("Germany", "Berlin", "德国", "柏林"),
    ("Italy", "Rome", "意大利", "罗马"),
    ("Spain", "Madrid", "西班牙", "马德里"),
    ("the United Kingdom", "London", "英国", "伦敦"),
    ("the United States", "Washington", "美国", "华盛顿"),
    ("Russia", "Moscow", "俄罗斯", "莫斯科"),
    ("Canada", "Ottawa", "加拿大", "渥太华"),
    ("Australia", "Canberra", "澳大利亚", "堪培拉"),
    ("Egypt", "Cairo", "埃及", "开罗"),
    ("India", "New Delhi", "印度", "新德里"),
    ("Brazil", "Brasilia", "巴西", "巴西利亚"),
    ("Korea", "Seoul", "韩国", "首尔"),
    ("Thailand", "Bangkok", "泰国", "曼谷"),
    ("Greece", "Athens", "希腊", "雅典"),
    ("Portugal", "Lisbon", "葡萄牙", "里斯本"),
    ("Mexico", "Mexico City", "墨西哥", "墨西哥城"),
    ("Kenya", "Nairobi", "肯尼亚", "内罗毕"),
]

# (thing, colour, 事物, 颜色)
COLOURS = [
    ("the sky", "blue", "天空", "蓝色"),
    ("grass", "green", "草", "绿色"),
    ("snow", "white", "雪", "白色"),
    ("a banana", "yellow", "香蕉", "黄色"),
    ("a strawberry", "red", "草莓", "红色"),
    ("coal", "black", "煤", "黑色"),
    ("an orange", "orange", "橙子", "橙色"),
    ("milk", "white", "牛奶", "白色"),
    ("the sun", "yellow", "太阳", "黄色"),
    ("a carrot", "orange", "胡萝卜", "橙色"),
]

# (English word, Chinese word)
WORDS = [
    ("hello", "你好"),
    ("thank you", "谢谢"),
    ("goodbye", "再见"),
    ("cat", "猫"),
    ("dog", "狗"),
    ("water", "水"),
    ("book", "书"),
    ("apple", "苹果"),
    ("friend", "朋友"),
    ("teacher", "老师"),
    ("computer", "电脑"),
    ("love", "爱"),
    ("sun", "太阳"),
    ("moon", "月亮"),
    ("tea", "茶"),
    ("rice", "米饭"),
]

# (topic, English answer, 主题, Chinese answer)
DEFINITIONS = [
    ("Python", "Python is a popular programming language that is easy to read.",
     "Python", "Python 是一种流行的编程语言,简单易读。"),
    ("an API", "An API is a way for programs to talk to each other.",
     "API", "API 是程序之间互相通信的接口。"),
    ("machine learning", "Machine learning lets computers learn patterns from data.",
     "机器学习", "机器学习让计算机从数据中学习规律。"),
    ("a language model", "A language model predicts the next word in a text.",
     "语言模型", "语言模型可以预测文本中的下一个词。"),
    ("HTTP", "HTTP is the protocol that web browsers and servers use to talk.",
     "HTTP", "HTTP 是浏览器和服务器之间通信的协议。"),
    ("the internet", "The internet is a global network of computers.",
     "互联网", "互联网是连接全世界计算机的网络。"),
    ("a computer", "A computer is a machine that runs programs.",
     "电脑", "电脑是一种可以运行程序的机器。"),
    ("AI", "AI means artificial intelligence: computers doing smart tasks.",
     "人工智能", "人工智能就是让计算机完成聪明的任务。"),
    ("a database", "A database is a place where programs store data.",
     "数据库", "数据库是程序存储数据的地方。"),
    ("streaming", "Streaming means sending a reply piece by piece as it is made.",
     "流式输出", "流式输出就是一边生成一边把结果发给你。"),
]  # fmt: skip

# (question, answer) facts with no parameter
FACTS_EN = [
    (["How many days are in a week?", "How many days in a week?"], "There are seven days in a week."),
    (["How many months are in a year?", "How many months in a year?"], "There are twelve months in a year."),
    (["How many hours are in a day?"], "There are 24 hours in a day."),
    (["How many legs does a spider have?"], "A spider has eight legs."),
    (["How many legs does a dog have?"], "A dog has four legs."),
    (["What is the largest ocean?"], "The Pacific Ocean is the largest ocean."),
    (["What is the tallest mountain?"], "Mount Everest is the tallest mountain."),
    (["What do cows drink?"], "Cows drink water."),
    (["What do bees make?"], "Bees make honey."),
    (["What is water made of?"], "Water is made of hydrogen and oxygen."),
    (["Where does the sun rise?"], "The sun rises in the east."),
    (["What is the opposite of hot?"], "The opposite of hot is cold."),
    (["What is the opposite of big?"], "The opposite of big is small."),
    (["What is the opposite of up?"], "The opposite of up is down."),
    (["What sound does a cat make?"], "A cat says meow."),
    (["What sound does a dog make?"], "A dog says woof."),
]
FACTS_ZH = [
    (["一周有几天?", "一个星期有几天?"], "一周有七天。"),
    (["一年有几个月?"], "一年有十二个月。"),
    (["一天有多少小时?"], "一天有二十四小时。"),
    (["蜘蛛有几条腿?"], "蜘蛛有八条腿。"),
    (["狗有几条腿?"], "狗有四条腿。"),
    (["最大的海洋是什么?"], "太平洋是最大的海洋。"),
    (["最高的山是什么?"], "珠穆朗玛峰是最高的山。"),
    (["蜜蜂会做什么?"], "蜜蜂会酿蜂蜜。"),
    (["太阳从哪边升起?"], "太阳从东方升起。"),
    (["热的反义词是什么?"], "热的反义词是冷。"),
    (["大的反义词是什么?"], "大的反义词是小。"),
    (["猫怎么叫?"], "猫喵喵叫。"),
    (["狗怎么叫?"], "狗汪汪叫。"),
]

# What the model does not know: it should say so briefly rather than answer something else.
UNKNOWN_TOPICS_EN = [
    "the sea",
    "love",
    "Peru",
    "quantum physics",
    "history",
    "the stock market",
    "football",
    "cooking",
    "space",
    "music",
    "your dreams",
    "Paris",
    "cars",
    "medicine",
    "philosophy",
]
UNKNOWN_TEMPLATES_EN = [
    "Write a poem about {}",
    "Tell me about {}",
    "Explain {} in detail",
    "Write an essay on {}",
    "What do you think about {}?",
    "Can you teach me {}?",
    "Give me a long story about {}",
]
UNKNOWN_TOPICS_ZH = [
    "大海",
    "历史",
    "北京",
    "量子物理",
    "股票",
    "足球",
    "做饭",
    "太空",
    "音乐",
    "哲学",
    "医学",
]
UNKNOWN_TEMPLATES_ZH = ["请介绍一下{}", "写一首关于{}的诗", "详细解释一下{}", "你怎么看{}?", "给我讲讲{}"]
UNKNOWN_REPLY_EN = [
    "Sorry, I am a tiny model and I don't know much about that.",
    "I'm not sure. I only know a few simple things.",
]
UNKNOWN_REPLY_ZH = ["抱歉,我是一个很小的模型,不太了解这个。", "我不太清楚,我只知道一些简单的事情。"]

NUMBERS_ZH = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are Tiny Chat, a friendly assistant.",
    "Answer briefly.",
    "你是一个乐于助人的助手。",
]


def _capital_intents() -> list[Intent]:
    intents: list[Intent] = []
    for country, capital, country_zh, capital_zh in CAPITALS:
        intents.append(
            _intent(
                [f"What is the capital of {country}?", f"What's the capital of {country}?",
                 f"capital of {country}?"],
                [f"The capital of {country} is {capital}."],
            )
        )  # fmt: skip
        intents.append(
            _zh_intent(
                [f"{country_zh}的首都是哪里?", f"{country_zh}的首都是什么?"],
                [f"{country_zh}的首都是{capital_zh}。"],
            )
        )
    return intents


def _colour_intents() -> list[Intent]:
    intents: list[Intent] = []
    for thing, colour, thing_zh, colour_zh in COLOURS:
        intents.append(
            _intent(
                [f"What color is {thing}?", f"What colour is {thing}?"],
                [f"{thing[0].upper()}{thing[1:]} is {colour}."],
            )
        )
        intents.append(
            _zh_intent(
                [f"{thing_zh}是什么颜色的?", f"{thing_zh}是什么颜色?"], [f"{thing_zh}是{colour_zh}的。"]
            )
        )
    return intents


def _translation_intents() -> list[Intent]:
    intents: list[Intent] = []
    for english, chinese in WORDS:
        intents.append(
            _intent(
                [f"How do you say {english} in Chinese?", f"Translate {english} into Chinese",
                 f"What is {english} in Chinese?"],
                [f"{english[0].upper()}{english[1:]} in Chinese is {chinese}."],
            )
        )  # fmt: skip
        intents.append(
            _zh_intent(
                [f"{chinese}用英文怎么说?", f"把{chinese}翻译成英文"], [f"{chinese}的英文是 {english}。"]
            )
        )
    return intents


def _definition_and_fact_intents() -> list[Intent]:
    intents: list[Intent] = []
    for topic, answer, topic_zh, answer_zh in DEFINITIONS:
        intents.append(_intent([f"What is {topic}?", f"Explain {topic}", f"what is {topic}"], [answer]))
        intents.append(_zh_intent([f"什么是{topic_zh}?", f"{topic_zh}是什么?"], [answer_zh]))
    intents += [_intent(prompts, [answer]) for prompts, answer in FACTS_EN]
    intents += [_zh_intent(prompts, [answer]) for prompts, answer in FACTS_ZH]
    return intents


def _arithmetic_intents() -> list[Intent]:
    """Sums of two digits, then the number after each of 1-9."""
    intents: list[Intent] = []
    for a in range(1, 10):
        for b in range(1, 10):
            intents.append(
                _intent(
                    [f"What is {a} plus {b}?", f"{a} + {b} = ?", f"What is {a} + {b}?"],
                    [f"{a} plus {b} is {a + b}."],
                )
            )
            intents.append(_zh_intent([f"{a}加{b}等于几?", f"{a}加{b}等于多少?"], [f"{a}加{b}等于{a + b}。"]))
    for n in range(1, 10):
        intents.append(_intent([f"What comes after {n}?"], [f"{n + 1} comes after {n}."]))
        intents.append(
            _zh_intent([f"{NUMBERS_ZH[n]}后面是几?"], [f"{NUMBERS_ZH[n]}后面是{NUMBERS_ZH[n + 1]}。"])
        )
    return intents


def _unknown_topic_intents() -> list[Intent]:
    # One intent per template so "don't know" is sampled about as often as the other small talk.
    english = [
        _intent([t.format(topic) for topic in UNKNOWN_TOPICS_EN], UNKNOWN_REPLY_EN)
        for t in UNKNOWN_TEMPLATES_EN
    ]
    chinese = [
        _zh_intent([t.format(topic) for topic in UNKNOWN_TOPICS_ZH], UNKNOWN_REPLY_ZH)
        for t in UNKNOWN_TEMPLATES_ZH
    ]
    return english + chinese


def _parametric_intents() -> list[Intent]:
    """The generated intents, in the order the corpus has always listed them (the order is part of the
    seeded sampling, hence of the model build)."""
    return (
        _capital_intents()
        + _colour_intents()
        + _translation_intents()
        + _definition_and_fact_intents()
        + _arithmetic_intents()
        + _unknown_topic_intents()
    )


def all_intents() -> list[Intent]:
    return CHITCHAT_EN + CHITCHAT_ZH + _parametric_intents()


def _exchange(rng: random.Random, intents: list[Intent]) -> tuple[str, str]:
    intent = rng.choice(intents)
    return rng.choice(intent.prompts), rng.choice(intent.replies)


def dialogues(seed: int, count: int) -> Iterator[list[Message]]:
    """``count`` dialogues: mostly one exchange, some with history or a system prompt."""
    rng = random.Random(seed)
    intents = all_intents()
    chitchat = CHITCHAT_EN + CHITCHAT_ZH
    for _ in range(count):
        messages: list[Message] = []
        if rng.random() < 0.15:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        turns = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
        for _ in range(turns):
            # Greetings and small talk are what users try first: weight them above the long tail.
            pool = chitchat if rng.random() < 0.4 else intents
            prompt, reply = _exchange(rng, pool)
            messages.append({"role": "user", "content": prompt})
            messages.append({"role": "assistant", "content": reply})
        yield messages


def tokenizer_training_text(seed: int) -> Iterator[str]:
    """Every prompt and reply at least once, so every word the corpus uses gets its merges."""
    for intent in all_intents():
        yield from intent.prompts
        yield from intent.replies
    yield from SYSTEM_PROMPTS
    for messages in dialogues(seed, 2000):
        yield from (m["content"] for m in messages)
